// Command demo runs Palisade's main job on its local default: a real
// control plane (kube-apiserver and etcd built from source), the
// `palisade webhook` binary serving admission, and a scripted tour with
// the real kubectl. It then stays up for the user's own kubectl until
// Ctrl-C, and cleans up everything it started.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Piped into a reader that goes away (`| head`, or a tee killed by the
	// same Ctrl-C), a write must fail, not kill the demo by SIGPIPE before
	// its clean-up has stopped the control plane and removed the network
	// namespaces, the bpffs and its folder.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, demoOptionsFromEnv()); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started is stopped and removed")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
