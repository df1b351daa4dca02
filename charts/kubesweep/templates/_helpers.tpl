{{/* Names, labels and small pieces shared by the templates. */}}

{{- define "kubesweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubesweep.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "kubesweep.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kubesweep.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubesweep.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubesweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubesweep
{{- end -}}

{{- define "kubesweep.selector" -}}
app.kubernetes.io/name: {{ include "kubesweep.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "kubesweep.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{- define "kubesweep.operator.serviceAccount" -}}
{{- default (printf "%s-operator" (include "kubesweep.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "kubesweep.suggestion.serviceAccount" -}}
{{- default (printf "%s-suggestion" (include "kubesweep.fullname" .)) .Values.suggestion.serviceAccount.name -}}
{{- end -}}

{{- define "kubesweep.intakeSecret" -}}
{{- default (printf "%s-intake" (include "kubesweep.fullname" .)) .Values.intake.existingSecret -}}
{{- end -}}

{{/* The namespaces the operator acts in, in namespaced scope. */}}
{{- define "kubesweep.namespaces" -}}
{{- $namespaces := list .Release.Namespace -}}
{{- range .Values.watchNamespaces -}}
{{- $namespaces = append $namespaces . -}}
{{- end -}}
{{- $namespaces | uniq | join "," -}}
{{- end -}}
