{{/* Names: <release>-docparse unless overridden; parts append -gateway, -triton, … */}}
{{- define "docparse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "docparse.fullname" -}}
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

{{- define "docparse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "docparse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one part: (dict "root" $ "component" "gateway") */}}
{{- define "docparse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "docparse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "docparse.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "docparse.tritonName" -}}{{ include "docparse.fullname" . }}-triton{{- end -}}
{{- define "docparse.gatewayName" -}}{{ include "docparse.fullname" . }}-gateway{{- end -}}
{{- define "docparse.jobStoreName" -}}{{ include "docparse.fullname" . }}-jobstore{{- end -}}
{{- define "docparse.modelsClaim" -}}
{{- .Values.models.pvc.existingClaim | default (printf "%s-models" (include "docparse.fullname" .)) -}}
{{- end -}}

{{/* One vLLM profile's values: vllm's defaults overlaid with the entry (dict "root" $ "entry" .) */}}
{{- define "docparse.vllmProfile" -}}
{{- $defaults := omit (deepCopy .root.Values.vllm) "profiles" "enabled" "image" "urlService" "headlessService" -}}
{{- toYaml (mergeOverwrite $defaults (deepCopy .entry)) -}}
{{- end -}}

{{- define "docparse.vllmName" -}}
{{- printf "%s-vllm-%s" (include "docparse.fullname" .root) .name | trunc 54 | trimSuffix "-" -}}
{{- end -}}

{{/* HPS_VLM_PROFILES from vllm.profiles: name, url, model and max_concurrency, then the entry's `profile`. */}}
{{- define "docparse.vlmProfiles" -}}
{{- $root := . -}}
{{- $profiles := list -}}
{{- range .Values.vllm.profiles -}}
{{- $p := include "docparse.vllmProfile" (dict "root" $root "entry" .) | fromYaml -}}
{{- $service := include "docparse.vllmName" (dict "root" $root "name" .name) -}}
{{- if eq $root.Values.vllm.urlService "headless" -}}{{- $service = printf "%s-headless" $service -}}{{- end -}}
{{- $entry := dict "name" .name "url" (printf "http://%s:8000/v1" $service) "model" .servedModelName "max_concurrency" (int ($p.maxConcurrency | default $p.maxNumSeqs)) -}}
{{- $profiles = append $profiles (mergeOverwrite (deepCopy ($p.profile | default dict)) $entry) -}}
{{- end -}}
{{- toJson $profiles -}}
{{- end -}}

{{/* A setting's value as the string the process reads (numbers from --set or -f files included). */}}
{{- define "docparse.settingValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* The environment of the gateway and Triton containers: the ConfigMap, the Secrets, then what the chart wires. */}}
{{- define "docparse.envFrom" -}}
- configMapRef:
    name: {{ include "docparse.fullname" . }}-config
- secretRef:
    name: {{ include "docparse.fullname" . }}-secrets
{{- with .Values.secrets.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{- define "docparse.commonEnv" -}}
{{- if .Values.vllm.enabled }}
- name: HPS_VLM_PROFILES
  value: {{ include "docparse.vlmProfiles" . | quote }}
{{- end }}
{{- if .Values.secrets.apiKeysFile }}
- name: HPS_API_KEYS_FILE
  value: /etc/docparse/api-keys.yaml
{{- end }}
{{- end -}}

{{- define "docparse.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "docparse.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The models volume of Triton and vLLM pods. */}}
{{- define "docparse.modelsVolume" -}}
- name: models
{{- if eq .Values.models.volume "pvc" }}
  persistentVolumeClaim:
    claimName: {{ include "docparse.modelsClaim" . }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.models.emptyDirSizeLimit }}
{{- end }}
{{- end -}}

{{/* Values that cannot work together stop the install with a sentence. */}}
{{- define "docparse.validate" -}}
{{- if and (eq .Values.models.volume "emptyDir") (not .Values.models.download) -}}
{{- fail "models.volume emptyDir starts empty: set models.download true, or use models.volume pvc with a filled claim" -}}
{{- end -}}
{{- if eq .Values.jobStore.type "sqlite" -}}
{{- if or (gt (int .Values.gateway.replicas) 1) .Values.gateway.autoscaling.enabled -}}
{{- fail "jobStore.type sqlite keeps jobs in one gateway pod's file: set gateway.replicas 1 and gateway.autoscaling.enabled false, or use jobStore.type postgresql or external" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.jobStore.type "external") (not (or .Values.jobStore.external.url .Values.jobStore.external.existingSecret)) -}}
{{- fail "jobStore.type external needs jobStore.external.url or jobStore.external.existingSecret" -}}
{{- end -}}
{{- if and .Values.vllm.enabled .Values.config.HPS_VLM_PROFILES -}}
{{- fail "config.HPS_VLM_PROFILES is written from vllm.profiles when vllm.enabled is true: leave it empty, or set vllm.enabled false to call VLMs of your own" -}}
{{- end -}}
{{- if and .Values.vllm.enabled (not .Values.vllm.profiles) -}}
{{- fail "vllm.enabled needs at least one entry in vllm.profiles" -}}
{{- end -}}
{{- end -}}
