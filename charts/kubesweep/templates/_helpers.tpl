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

{{/* Where the namespaced objects go: namespaceOverride, else the release namespace. */}}
{{- define "kubesweep.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{/* Labels of every object: the recommended ones, then commonLabels. */}}
{{- define "kubesweep.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kubesweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubesweep
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "kubesweep.selector" -}}
app.kubernetes.io/name: {{ include "kubesweep.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* registry/repository:tag, or registry/repository@digest when a digest is given. */}}
{{- define "kubesweep.image" -}}
{{- $repository := .image.repository -}}
{{- with .root.Values.global.imageRegistry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "kubesweep.operator.serviceAccount" -}}
{{- default (printf "%s-operator" (include "kubesweep.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "kubesweep.suggestion.serviceAccount" -}}
{{- default (printf "%s-suggestion" (include "kubesweep.fullname" .)) .Values.suggestion.serviceAccount.name -}}
{{- end -}}

{{- define "kubesweep.dashboard.serviceAccount" -}}
{{- default (printf "%s-dashboard" (include "kubesweep.fullname" .)) .Values.dashboard.serviceAccount.name -}}
{{- end -}}

{{/* What the dashboard may do: read Experiments, Trials, pods and their logs. */}}
{{- define "kubesweep.dashboard.rules" -}}
- apiGroups: [kubesweep.io]
  resources: [experiments, trials]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}

{{/* The Secret holding the intake key: the user's, or the one the operator creates. */}}
{{- define "kubesweep.intakeSecret" -}}
{{- default (printf "%s-intake" (include "kubesweep.fullname" .)) .Values.intake.existingSecret -}}
{{- end -}}

{{/* Several operator replicas: kopf peering, and the intake routed to the active one. */}}
{{- define "kubesweep.ha" -}}
{{- if gt (int .Values.operator.replicas) 1 }}true{{ end -}}
{{- end -}}

{{/* The namespaces the operator acts in, in namespaced scope. */}}
{{- define "kubesweep.namespaces" -}}
{{- $namespaces := list (include "kubesweep.namespace" .) -}}
{{- range .Values.watchNamespaces -}}
{{- $namespaces = append $namespaces . -}}
{{- end -}}
{{- $namespaces | uniq | join "," -}}
{{- end -}}

{{/*
"true" when the suggestion service admits only the operator's token: on with
suggestion.auth.enabled, in namespaced scope only with auth.inNamespacedScope
(it needs a ClusterRoleBinding there).
*/}}
{{- define "kubesweep.suggestionAuth" -}}
{{- if and .Values.suggestion.auth.enabled (or (eq .Values.scope "cluster") .Values.suggestion.auth.inNamespacedScope) -}}
true
{{- end -}}
{{- end -}}

{{/*
The trial workload kinds beyond Jobs that trialWorkloads enables, as the operator's
--trial-workloads JSON (empty when none).
*/}}
{{- define "kubesweep.trialWorkloads" -}}
{{- $kinds := list -}}
{{- if .Values.trialWorkloads.jobSet -}}
{{- $kinds = append $kinds (dict "apiVersion" "jobset.x-k8s.io/v1alpha2" "kind" "JobSet" "plural" "jobsets") -}}
{{- end -}}
{{- range .Values.trialWorkloads.customResources -}}
{{- $kinds = append $kinds (dict "apiVersion" .apiVersion "kind" .kind "plural" .plural) -}}
{{- end -}}
{{- if $kinds -}}{{ toJson $kinds }}{{- end -}}
{{- end -}}
