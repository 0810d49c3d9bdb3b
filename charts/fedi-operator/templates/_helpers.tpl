{{- define "fedi-operator.labels" -}}
app.kubernetes.io/name: fedi-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fedi-operator.selector" -}}
app.kubernetes.io/name: fedi-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
What the operator does in a namespace it serves; one reason per rule. Used by the
ClusterRole (every namespace) or by one Role per watched namespace.
*/}}
{{- define "fedi-operator.rules" -}}
# Watch every FediInstance: the controller is level-triggered on them. patch: the finalizer
# that deletes an external bucket under deletionPolicy Delete (added and removed, nothing
# else).
- apiGroups: ["fedi.dev"]
  resources: ["fediinstances"]
  verbs: ["get", "list", "watch", "patch"]
# Owner references with blockOwnerDeletion on the children: clusters enforcing owner
# permissions (OwnerReferencesPermissionEnforcement) ask for this.
- apiGroups: ["fedi.dev"]
  resources: ["fediinstances/finalizers"]
  verbs: ["update"]
# Report what it observed, through the status subresource only.
- apiGroups: ["fedi.dev"]
  resources: ["fediinstances/status"]
  verbs: ["get", "patch"]
# The children of each instance: watched to repair drift, applied server-side, and the
# ones no longer wanted (a removed worker pool, an HPA after autoscaling is turned off)
# deleted. StatefulSets run the managed Redis, object store and search cluster.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The schema migration Jobs of each server version (pre before the rollout, post after
# it) and the search reindex Job; watched for their outcome, removed with the instance
# (TTL cleans up old ones). A failed reindex Job is marked once its failure is reported
# (an annotation), and deleted to run it again later.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The failed migration pod's termination message (the end of its log), quoted in the
# MigrationFailed condition.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies", "ingresses"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Secrets: referenced ones are read to check that the keys the pods need exist (values are
# never logged or reported), and read for the credentials of Redis and S3, which the
# operator prepares; the generated ones (keys, managed services' credentials) are created
# once, updated only on an explicit rotation request (fedi.dev/rotate-secrets), and deleted
# with the instance under deletionPolicy: Delete.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
# The managed services' volumes: deleted with the instance under deletionPolicy: Delete;
# their requests raised when spec storage sizes grow (StatefulSet claims are immutable).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch", "delete"]
{{- if .Values.watchSecrets }}
# watchSecrets: a metadata-only watch, so that a created or fixed Secret is seen at once.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- end }}
# The managed database, through CloudNativePG (when installed): the Cluster is watched for
# its status, and deleted only with the instance under deletionPolicy: Delete; Pooler and
# ScheduledBackup follow the spec.
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["clusters"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["postgresql.cnpg.io"]
  resources: ["poolers", "scheduledbackups"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Gateway API routes, when an instance asks for an HTTPRoute instead of an Ingress; watched
# (drift repaired at once) when the Gateway API is installed.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Worker pools autoscaled on queue latency get a KEDA ScaledObject when KEDA is installed.
# Needed as soon as KEDA's CRD exists: pruning lists them for every instance.
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events on FediInstances: every change and every failure shows in `kubectl describe`.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
