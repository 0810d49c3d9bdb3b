// Command etcd is the etcd server built from the pinned go.etcd.io/etcd/server/v3
// module (the go.etcd.io/etcd/v3 root module that holds upstream's main.go is
// not published for every 3.6 patch release). Used by tests/e2e/cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
