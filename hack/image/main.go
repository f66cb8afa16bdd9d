// Command image builds Palisade's container image as a tarball, without a
// Docker daemon: the static binary (CGO_ENABLED=0, -trimpath) in one layer
// on an empty base, with a nonroot user (uid 65532) for the webhook and OCI
// labels. Same inputs, same digest: every timestamp is SOURCE_DATE_EPOCH
// (default 0). The tarball loads with `kind load image-archive` or
// `docker load`.
//
//	go run ./hack/image -o bin/palisade-image.tar
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks bad flags: exit code 2.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.out, "o", "", "write the image tarball here (required)")
	fs.StringVar(&o.repository, "repository", defaultRepository, "image repository of the tag")
	fs.StringVar(&o.version, "version", "", "version stamped into the binary and used as the tag (default: appVersion of -chart)")
	fs.StringVar(&o.chart, "chart", "charts/palisade/Chart.yaml", "Chart.yaml whose appVersion is the default version, so the chart's default image is this one")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the binary and the image")
	fs.StringVar(&o.binary, "binary", "", "use this static linux binary instead of building ./cmd/palisade")
	fs.StringVar(&o.caBundle, "ca-certificates", "", "add this CA bundle as /etc/ssl/certs/ca-certificates.crt (optional: Palisade only talks to the API server, whose CA comes with the service account)")
	fs.StringVar(&o.revision, "revision", "", "source revision for org.opencontainers.image.revision (default: git rev-parse HEAD, if available)")
	epoch := fs.Int64("epoch", -1, "timestamp of every file and of the image, in seconds since 1970 (default: $SOURCE_DATE_EPOCH, else 0)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if o.out == "" {
		return usageError{errors.New("-o: required (e.g. -o bin/palisade-image.tar)")}
	}
	var err error
	if o.epoch, err = resolveEpoch(*epoch, os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return usageError{err}
	}
	if o.version == "" {
		if o.version, err = appVersion(o.chart); err != nil {
			return usageError{fmt.Errorf("-version not given and %w", err)}
		}
	}
	if o.revision == "" {
		o.revision = gitRevision(ctx)
	}
	res, err := writeImage(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s image-id %s oci-manifest %s\n%s\n", res.ref, res.imageID, res.digest, o.out)
	return nil
}
