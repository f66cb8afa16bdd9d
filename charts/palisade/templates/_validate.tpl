{{- /*
Checks values.schema.json cannot express (relations between values); each
failure names the values involved.
*/ -}}
{{- define "palisade.validate" -}}
{{- $c := .Values.certs -}}
{{- if and (eq $c.mode "secret") (not $c.secretName) -}}
{{- fail "certs.secretName: required when certs.mode is \"secret\" (the kubernetes.io/tls Secret you provide)" -}}
{{- end -}}
{{- if and (eq $c.mode "secret") (not $c.caBundle) -}}
{{- fail "certs.caBundle: required when certs.mode is \"secret\" (the PEM CA that signed your serving certificate; the API server verifies the webhook with it)" -}}
{{- end -}}
{{- if and (ne $c.mode "secret") $c.caBundle -}}
{{- fail (printf "certs.caBundle: only used when certs.mode is \"secret\"; mode %q injects the CA itself" $c.mode) -}}
{{- end -}}
{{- if eq $c.mode "cert-manager" -}}
{{- $d := trimSuffix "h" $c.certManager.duration | int -}}
{{- $r := trimSuffix "h" $c.certManager.renewBefore | int -}}
{{- $ca := trimSuffix "h" $c.certManager.caDuration | int -}}
{{- if not (and (lt $r $d) (lt $d $ca)) -}}
{{- fail (printf "certs.certManager: need renewBefore (%s) < duration (%s) < caDuration (%s)" $c.certManager.renewBefore $c.certManager.duration $c.certManager.caDuration) -}}
{{- end -}}
{{- end -}}
{{- $auth := .Values.webhook.clientAuth -}}
{{- if and (eq $auth.mode "required") (not $auth.caBundle) (not $auth.caConfigMap) -}}
{{- fail "webhook.clientAuth: give caBundle (or caConfigMap), the CA that signed the API server's webhook client certificate (README: Install, --admission-control-config-file); or set webhook.clientAuth.mode=none to let anyone who reaches the webhook port have a forged request judged and recorded" -}}
{{- end -}}
{{- if and $auth.caBundle $auth.caConfigMap -}}
{{- fail "webhook.clientAuth: caBundle and caConfigMap both set; give one" -}}
{{- end -}}
{{- if and (eq $auth.mode "none") (or $auth.caBundle $auth.caConfigMap $auth.allowedNames) -}}
{{- fail "webhook.clientAuth: caBundle, caConfigMap and allowedNames are only used when mode is \"required\"" -}}
{{- end -}}
{{- if and .Values.webhook.networkPolicy.enabled (not .Values.webhook.networkPolicy.controlPlaneCIDRs) -}}
{{- fail "webhook.networkPolicy.controlPlaneCIDRs: required when webhook.networkPolicy.enabled (the addresses the API server reaches the webhook from; without them no API server could call it); or set webhook.networkPolicy.enabled=false" -}}
{{- end -}}
{{- if and .Values.enforcer.uplinkInterfaces (not .Values.enforcer.serviceCIDRs) -}}
{{- fail "enforcer.uplinkInterfaces: needs enforcer.serviceCIDRs (uplinks only judge service traffic)" -}}
{{- end -}}
{{- if has .Release.Namespace (list "kube-system" "kube-public" "kube-node-lease") -}}
{{- fail (printf "release namespace %q: install Palisade in its own namespace (e.g. palisade-system), not a system namespace" .Release.Namespace) -}}
{{- end -}}
{{- if has .Values.tests.namespace (list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) -}}
{{- fail (printf "tests.namespace %q: must be a governed namespace (not a system namespace nor the release namespace), or helm test cannot see a denial" .Values.tests.namespace) -}}
{{- end -}}
{{- end -}}
