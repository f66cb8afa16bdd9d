package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"time"
)

// Users of the image: root for the enforcer (set by its securityContext)
// and nonroot, the default, for the webhook.
const (
	nonrootUID = 65532
	passwd     = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group      = "root:x:0:\nnonroot:x:65532:\n"
)

// entry is one file or directory of the layer.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	data     []byte // nil for a directory
	dir      bool
}

// rootfs lists the layer's entries, parents first, in a fixed order.
func rootfs(binary, caBundle []byte) []entry {
	es := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
	}
	if caBundle != nil {
		es = append(es,
			entry{name: "etc/ssl/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			entry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: caBundle})
	}
	return append(es,
		entry{name: "home/", mode: 0o755, dir: true},
		entry{name: "home/nonroot/", mode: 0o700, uid: nonrootUID, gid: nonrootUID, dir: true},
		entry{name: "palisade", mode: 0o755, data: binary},
		entry{name: "tmp/", mode: 0o1777, dir: true},
	)
}

// layerTar writes entries as an uncompressed tar whose every byte depends
// only on the entries and mtime.
func layerTar(entries []entry, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatUSTAR,
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}
