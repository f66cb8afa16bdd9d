package gatekeeper

import (
	"fmt"

	templatesv1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1"
	templatesv1alpha1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1alpha1"
	templatesv1beta1 "github.com/open-policy-agent/frameworks/constraint/pkg/apis/templates/v1beta1"
	"github.com/open-policy-agent/frameworks/constraint/pkg/core/templates"
	expansionunversioned "github.com/open-policy-agent/gatekeeper/v3/apis/expansion/unversioned"
	expansionv1alpha1 "github.com/open-policy-agent/gatekeeper/v3/apis/expansion/v1alpha1"
	expansionv1beta1 "github.com/open-policy-agent/gatekeeper/v3/apis/expansion/v1beta1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	templatesGroup   = "templates.gatekeeper.sh"
	constraintsGroup = "constraints.gatekeeper.sh"
	expansionGroup   = "expansion.gatekeeper.sh"
)

// fromUnstructured decodes u into out, refusing unknown fields: a
// misspelt field in a rule silently changes what the rule does.
func fromUnstructured(u *unstructured.Unstructured, out any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true)
}

// toTemplate converts a ConstraintTemplate of any served version into the
// version-less form the constraint framework takes.
func toTemplate(u *unstructured.Unstructured) (*templates.ConstraintTemplate, error) {
	type versionless interface {
		ToVersionless() (*templates.ConstraintTemplate, error)
	}
	var v versionless
	switch version := u.GroupVersionKind().Version; version {
	case "v1":
		v = &templatesv1.ConstraintTemplate{}
	case "v1beta1":
		v = &templatesv1beta1.ConstraintTemplate{}
	case "v1alpha1":
		v = &templatesv1alpha1.ConstraintTemplate{}
	default:
		return nil, fmt.Errorf("unsupported version %s of %s (one of: v1, v1beta1, v1alpha1)", version, templatesGroup)
	}
	if err := fromUnstructured(u, v); err != nil {
		return nil, err
	}
	t, err := v.ToVersionless()
	if err != nil {
		return nil, fmt.Errorf("convert template: %w", err)
	}
	return t, nil
}

func toExpansion(u *unstructured.Unstructured) (*expansionunversioned.ExpansionTemplate, error) {
	out := &expansionunversioned.ExpansionTemplate{}
	switch version := u.GroupVersionKind().Version; version {
	case "v1beta1":
		in := &expansionv1beta1.ExpansionTemplate{}
		if err := fromUnstructured(u, in); err != nil {
			return nil, err
		}
		if err := expansionv1beta1.Convert_v1beta1_ExpansionTemplate_To_unversioned_ExpansionTemplate(in, out, nil); err != nil {
			return nil, fmt.Errorf("convert expansion template: %w", err)
		}
	case "v1alpha1":
		in := &expansionv1alpha1.ExpansionTemplate{}
		if err := fromUnstructured(u, in); err != nil {
			return nil, err
		}
		if err := expansionv1alpha1.Convert_v1alpha1_ExpansionTemplate_To_unversioned_ExpansionTemplate(in, out, nil); err != nil {
			return nil, fmt.Errorf("convert expansion template: %w", err)
		}
	default:
		return nil, fmt.Errorf("unsupported version %s of %s (one of: v1beta1, v1alpha1)", version, expansionGroup)
	}
	return out, nil
}
