{{- define "iao.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "iao.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "iao.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iao.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "iao.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "iao.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "iao.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "iao.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The rules the operator needs on the objects it manages (see the README for each call). */}}
{{- define "iao.rules" -}}
- apiGroups: ["glance.viettelidc.com.vn"]
  resources: ["imageaccessaccepts"]
  verbs: ["get", "list", "watch", "patch"]
# get: a child's deletion reads its share's deletion policy; patch: the share's finalizer,
# held until its children carry its last policy.
- apiGroups: ["glance.viettelidc.com.vn"]
  resources: ["imageshares"]
  verbs: ["get", "list", "watch", "patch"]
# ImageShare objects create, set back and delete the ImageAccess objects they own.
- apiGroups: ["glance.viettelidc.com.vn"]
  resources: ["imageaccesses"]
  verbs: ["get", "list", "watch", "patch", "create", "delete"]
- apiGroups: ["glance.viettelidc.com.vn"]
  resources: ["imageaccesses/status", "imageaccessaccepts/status", "imageshares/status"]
  verbs: ["patch"]
# blockOwnerDeletion on the children needs it where OwnerReferencesPermissionEnforcement is on.
- apiGroups: ["glance.viettelidc.com.vn"]
  resources: ["imageshares/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
