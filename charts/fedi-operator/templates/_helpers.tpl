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
