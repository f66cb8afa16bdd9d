{{/*
Names. Object names are derived from one prefix so that two releases in
different namespaces never collide on namespaced objects; the two webhook
configurations keep the fixed names webhook.WebhookConfigurations gives them
(palisade-mutate, palisade-validate): one Palisade per cluster.
*/}}
{{- define "palisade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "palisade.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "palisade.webhookName" -}}{{ include "palisade.fullname" . }}-webhook{{- end -}}
{{- define "palisade.enforcerName" -}}{{ include "palisade.fullname" . }}-enforcer{{- end -}}
{{- define "palisade.serviceName" -}}{{ include "palisade.fullname" . }}-webhook{{- end -}}
{{- define "palisade.standardName" -}}{{ include "palisade.fullname" . }}-standard{{- end -}}
{{- define "palisade.rulesName" -}}{{ include "palisade.fullname" . }}-rules{{- end -}}
{{- define "palisade.mutatingName" -}}palisade-mutate{{- end -}}
{{- define "palisade.validatingName" -}}palisade-validate{{- end -}}

{{- define "palisade.secretName" -}}
{{- default (printf "%s-webhook-tls" (include "palisade.fullname" .)) .Values.certs.secretName -}}
{{- end -}}

{{/* The serving Certificate of cert-manager mode; the cainjector annotation points at it. */}}
{{- define "palisade.certificateName" -}}{{ include "palisade.webhookName" . }}{{- end -}}

{{- define "palisade.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "palisade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "palisade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: palisade
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* selectorLabels takes (dict "ctx" $ "component" "webhook"). */}}
{{- define "palisade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "palisade.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* componentLabels: the common labels plus the component. */}}
{{- define "palisade.componentLabels" -}}
{{ include "palisade.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The standard's content: the value, else the chart's copy of the default. */}}
{{- define "palisade.standard" -}}
{{- if .Values.standard -}}
{{- .Values.standard -}}
{{- else -}}
{{- .Files.Get "files/standard.yaml" -}}
{{- end -}}
{{- end -}}

{{/*
Webhook args that depend on the certificate mode. --cert-dir is an emptyDir
the certificate code writes tls.crt/tls.key into in every mode (self-managed:
from the Secret it manages; cert-manager and secret: from the Secret it reads
and checks), so a bad Secret is reported and never served.
*/}}
{{- define "palisade.certArgs" -}}
- --cert-dir=/var/run/palisade/certs
- --cert-mode={{ .Values.certs.mode }}
- --cert-secret={{ include "palisade.secretName" . }}
- --service-name={{ include "palisade.serviceName" . }}
{{- if eq .Values.certs.mode "self-managed" }}
- --mutating-configuration={{ include "palisade.mutatingName" . }}
- --validating-configuration={{ include "palisade.validatingName" . }}
{{- end }}
{{- end -}}
