package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errStaleBundle says a configuration already carries a later bundle than
// the one at hand: the Secret was read before another replica changed it.
var errStaleBundle = errors.New("configuration carries a later CA bundle generation")

// configuration is one webhook configuration to inject, of either kind.
type configuration struct {
	kind, name string
	newObj     func() client.Object
	configs    func(client.Object) []*admissionregistrationv1.WebhookClientConfig
}

func configurations(mutating, validating string) []configuration {
	var out []configuration
	if mutating != "" {
		out = append(out, configuration{
			kind: "MutatingWebhookConfiguration", name: mutating,
			newObj: func() client.Object { return &admissionregistrationv1.MutatingWebhookConfiguration{} },
			configs: func(o client.Object) []*admissionregistrationv1.WebhookClientConfig {
				hooks := o.(*admissionregistrationv1.MutatingWebhookConfiguration).Webhooks
				out := make([]*admissionregistrationv1.WebhookClientConfig, len(hooks))
				for i := range hooks {
					out[i] = &hooks[i].ClientConfig
				}
				return out
			},
		})
	}
	if validating != "" {
		out = append(out, configuration{
			kind: "ValidatingWebhookConfiguration", name: validating,
			newObj: func() client.Object { return &admissionregistrationv1.ValidatingWebhookConfiguration{} },
			configs: func(o client.Object) []*admissionregistrationv1.WebhookClientConfig {
				hooks := o.(*admissionregistrationv1.ValidatingWebhookConfiguration).Webhooks
				out := make([]*admissionregistrationv1.WebhookClientConfig, len(hooks))
				for i := range hooks {
					out[i] = &hooks[i].ClientConfig
				}
				return out
			},
		})
	}
	return out
}

// injectBundle sets clientConfig.caBundle of every webhook of cfgs to
// bundle and marks each configuration with the bundle's generation. It
// returns the configurations that do not exist: nothing reaches the
// webhook through them, so there is nothing to protect yet; they get the
// bundle once they appear. Concurrent writers (another replica, a Helm
// upgrade) are retried on a fresh read; a configuration of a later
// generation is left alone and errStaleBundle returned.
func injectBundle(ctx context.Context, c client.Client, cfgs []configuration, bundle []byte, generation int64) (missing []string, err error) {
	for _, cfg := range cfgs {
		found := true
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			obj := cfg.newObj()
			if err := c.Get(ctx, client.ObjectKey{Name: cfg.name}, obj); err != nil {
				if apierrors.IsNotFound(err) {
					found = false
					return nil
				}
				return err
			}
			found = true
			if have := parseGeneration(obj.GetAnnotations()); have > generation {
				return fmt.Errorf("%w (%d, the Secret has %d)", errStaleBundle, have, generation)
			}
			changed := false
			for _, cc := range cfg.configs(obj) {
				if !bytes.Equal(cc.CABundle, bundle) {
					cc.CABundle = append([]byte(nil), bundle...)
					changed = true
				}
			}
			want := strconv.FormatInt(generation, 10)
			ann := obj.GetAnnotations()
			if ann[AnnotationBundleGeneration] != want {
				if ann == nil {
					ann = map[string]string{}
				}
				ann[AnnotationBundleGeneration] = want
				obj.SetAnnotations(ann)
				changed = true
			}
			if !changed {
				return nil
			}
			return c.Update(ctx, obj)
		})
		if err != nil {
			return nil, fmt.Errorf("inject CA bundle into %s %s: %w", cfg.kind, cfg.name, err)
		}
		if !found {
			missing = append(missing, cfg.kind+" "+cfg.name)
		}
	}
	return missing, nil
}

// highestGeneration is the latest bundle generation on cfgs, so that a
// Secret created anew continues the count instead of being taken for stale.
func highestGeneration(ctx context.Context, c client.Client, cfgs []configuration) (int64, error) {
	var high int64
	for _, cfg := range cfgs {
		obj := cfg.newObj()
		if err := c.Get(ctx, client.ObjectKey{Name: cfg.name}, obj); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return 0, fmt.Errorf("read %s %s: %w", cfg.kind, cfg.name, err)
		}
		high = max(high, parseGeneration(obj.GetAnnotations()))
	}
	return high, nil
}
