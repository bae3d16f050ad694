// pause is the pod sandbox's process: it waits for SIGTERM or SIGINT and exits. No registry is
// reachable on our machines, so the node's sandbox image is built from this (static, no libc)
// by hack/tools.sh and hack/image.sh, instead of pulling registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
