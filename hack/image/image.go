package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// result names what was written. The tarball is in `docker save` form
// (what tarball.Write writes and kind/docker/ctr load), which carries the
// config and the layers but no manifest: a loader writes its own, so the
// identity that survives loading is the image ID (the config's digest),
// which `crictl images` and `docker images` show.
type result struct {
	ref     name.Tag
	imageID v1.Hash // config digest
	digest  v1.Hash // digest of the OCI manifest built here
}

// writeImage builds the binary (unless given one), assembles the image and
// writes it as a tarball, replacing o.out only once it is complete.
func writeImage(ctx context.Context, o options) (*result, error) {
	ref, err := name.NewTag(o.repository + ":" + o.version)
	if err != nil {
		return nil, fmt.Errorf("image tag %s:%s: %w", o.repository, o.version, err)
	}
	binPath := o.binary
	if binPath == "" {
		dir, err := os.MkdirTemp("", "palisade-image-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if binPath, err = buildBinary(ctx, dir, o.version, o.arch); err != nil {
			return nil, err
		}
	}
	binary, err := os.ReadFile(binPath)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var ca []byte
	if o.caBundle != "" {
		if ca, err = os.ReadFile(o.caBundle); err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
	}
	img, err := assemble(binary, ca, o)
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("compute image digest: %w", err)
	}
	imageID, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("compute image ID: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return nil, err
	}
	tmp := o.out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("write image tarball: %w", err)
	}
	if err := os.Rename(tmp, o.out); err != nil {
		return nil, err
	}
	return &result{ref: ref, imageID: imageID, digest: digest}, nil
}

// assemble puts the binary (and the optional CA bundle) in one layer on an
// empty base and sets the config: OCI media types, entrypoint /palisade,
// user nonroot, labels, every timestamp at o.epoch.
func assemble(binary, caBundle []byte, o options) (v1.Image, error) {
	created := time.Unix(o.epoch, 0).UTC()
	data, err := layerTar(rootfs(binary, caBundle), created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("create layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History: v1.History{
			Created:   v1.Time{Time: created},
			CreatedBy: "hack/image: static palisade " + o.version + " on an empty base",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		Entrypoint: []string{"/palisade"},
		User:       fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		WorkingDir: "/",
		Env:        []string{"PATH=/"},
		Labels:     labels(o, created),
	}
	if caBundle != nil {
		cf.Config.Env = append(cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// labels are the OCI annotation keys, as image config labels.
func labels(o options, created time.Time) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "palisade",
		"org.opencontainers.image.description": "Palisade: admission webhook (labeling standard, baseline NetworkPolicies) and eBPF NetworkPolicy enforcer",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
		"org.opencontainers.image.source":      "https://github.com/palisade-dev/palisade",
		"org.opencontainers.image.url":         "https://github.com/palisade-dev/palisade",
		"org.opencontainers.image.vendor":      "Palisade",
		"org.opencontainers.image.base.name":   "scratch",
	}
	if o.revision != "" {
		l["org.opencontainers.image.revision"] = o.revision
	}
	return l
}
