{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "tanuki.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the prefix of every resource name. The release name alone when it already contains the
chart name.
*/}}
{{- define "tanuki.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tanuki.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "tanuki.labels" -}}
helm.sh/chart: {{ include "tanuki.chart" . }}
{{ include "tanuki.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: tanuki
{{- end }}

{{/*
Selector labels: immutable once a Deployment exists, so only name and instance.
*/}}
{{- define "tanuki.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tanuki.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tanuki.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tanuki.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image references: an empty tag means the chart's appVersion.
*/}}
{{- define "tanuki.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/*
Port of kopf's liveness endpoint (`kopf run --liveness=http://0.0.0.0:<port>/healthz`).
*/}}
{{- define "tanuki.livenessPort" -}}
8080
{{- end }}

{{/*
Namespaces the operator watches when not cluster-wide; fails early on an empty list.
*/}}
{{- define "tanuki.watchNamespaces" -}}
{{- if and (not .Values.rbac.clusterWide) (empty .Values.rbac.watchNamespaces) }}
{{- fail "rbac.watchNamespaces must list at least one namespace when rbac.clusterWide is false" }}
{{- end }}
{{- toJson (.Values.rbac.watchNamespaces | uniq) }}
{{- end }}

{{/*
RBAC rules for the namespaced resources the operator reconciles: the custom resources it serves
and the children it renders. Used by the ClusterRole (cluster-wide) or by one Role per watched
namespace. No wildcards: each verb is one the operator (or kopf) issues.
*/}}
{{- define "tanuki.rules.namespaced" -}}
# The custom resources: kopf lists and watches them (event handlers only: kopf writes nothing to
# them and adds no finalizer); the operator reads each before reconciling it.
- apiGroups: ["llm.tanuki.dev"]
  resources: ["curatejobs", "tokenizejobs", "pretrainjobs", "upcyclejobs", "synthjobs", "sftjobs", "dpojobs",
              "quantizejobs", "modelservers", "evaljobs", "arenas"]
  verbs: ["get", "list", "watch"]
# A ModelServer's quality gates: the operator creates the EvalJob that judges each canary step.
- apiGroups: ["llm.tanuki.dev"]
  resources: ["evaljobs"]
  verbs: ["create"]
# The operator writes status through the status subresource (merge patch).
- apiGroups: ["llm.tanuki.dev"]
  resources:
    - "curatejobs/status"
    - "tokenizejobs/status"
    - "pretrainjobs/status"
    - "upcyclejobs/status"
    - "synthjobs/status"
    - "sftjobs/status"
    - "dpojobs/status"
    - "quantizejobs/status"
    - "modelservers/status"
    - "evaljobs/status"
    - "arenas/status"
  verbs: ["get", "patch"]
# Setting ownerReferences with blockOwnerDeletion on children requires update on <kind>/finalizers
# of the owner (OwnerReferencesPermissionEnforcement).
- apiGroups: ["llm.tanuki.dev"]
  resources:
    - "curatejobs/finalizers"
    - "tokenizejobs/finalizers"
    - "pretrainjobs/finalizers"
    - "upcyclejobs/finalizers"
    - "synthjobs/finalizers"
    - "sftjobs/finalizers"
    - "dpojobs/finalizers"
    - "quantizejobs/finalizers"
    - "modelservers/finalizers"
    - "evaljobs/finalizers"
    - "arenas/finalizers"
  verbs: ["update"]
# Children: Jobs (TokenizeJob, PretrainJob, UpcycleJob, SFTJob, DPOJob, QuantizeJob, EvalJob, local-mode SynthJob).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Children: recipe ConfigMaps, headless Services (rendezvous), serving Services.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Arena: the claim of its SQLite votes (created, never deleted by the operator: the votes outlive
# the Arena).
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Outputs (termination messages) and training progress (log lines) come from the Jobs' pods. A
# ModelServer judged before traffic: the operator labels the pods it admits to the router (patch).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
# Preflight: a stage waits (SecretMissing) instead of starting when a Secret key its pods mount is
# missing; the operator reads which keys a Secret has (it never lists or watches them). An Arena
# with identity.voters: the operator creates and updates the Secret of the tokens it issues.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# Rollout analysis reads each canary replica's vLLM /metrics (5xx counts) through the API server.
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get"]
# Each ModelServer's vllm-router discovers its replicas with its own ServiceAccount and a Role
# allowing pods get/list/watch (the operator holds those verbs, so it may grant them).
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The operator posts core v1 Events on its resources (phase changes, rollout steps, refused edits).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# A NetworkPolicy per resource (pods of one job reach each other; vLLM only from its router).
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# ModelServer: vLLM Deployments (stable + canary) and their autoscaling.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# SynthJob / DPO pair generation: KubeRay RayJobs.
- apiGroups: ["ray.io"]
  resources: ["rayjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}

{{/*
RBAC rules for cluster-scoped reads kopf makes: it watches CustomResourceDefinitions to notice
served resources appearing/changing, and (when given --namespace) lists and watches Namespaces to
resolve its namespace patterns; without them it falls back to a one-time scan with warnings
(https://kopf.readthedocs.io/en/stable/deployment/#rbac; kopf/_core/reactor/observation.py).
--standalone disables peering, so no (Cluster)KopfPeering rules.
*/}}
{{- define "tanuki.rules.cluster" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
Name of cluster-scoped objects (ClusterRole, ClusterRoleBinding): they share one namespace-less
name space, so the release namespace is part of the name.
*/}}
{{- define "tanuki.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "tanuki.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}
