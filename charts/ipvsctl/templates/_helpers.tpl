{{/* Names, labels and the small computed values the templates share. */}}

{{- define "ipvsctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ipvsctl.fullname" -}}
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

{{- define "ipvsctl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ipvsctl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ipvsctl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ipvsctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ipvsctl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ipvsctl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ipvsctl.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "ADDRESS:PORT" for a bind flag, with IPv6 addresses in brackets. Argument: (list address port). */}}
{{- define "ipvsctl.hostPort" -}}
{{- $address := index . 0 }}
{{- $port := index . 1 | int }}
{{- if contains ":" $address }}
{{- printf "[%s]:%d" $address $port }}
{{- else }}
{{- printf "%s:%d" $address $port }}
{{- end }}
{{- end }}

{{/*
The address /metrics listens on. metrics.bindAddress when set; otherwise the node only (127.0.0.1, as
kube-proxy's 10249), widened to every address when this chart's metrics Service or a monitor scrapes it (the
scrape reaches the node IP). Scraping a loopback address could never work: that is refused.
*/}}
{{- define "ipvsctl.metricsBindAddress" -}}
{{- $metrics := .Values.metrics }}
{{- $scraped := or $metrics.service.enabled .Values.prometheus.serviceMonitor.enabled .Values.prometheus.podMonitor.enabled }}
{{- $address := $metrics.bindAddress | default (ternary "0.0.0.0" "127.0.0.1" $scraped) }}
{{- if and $scraped (or (hasPrefix "127." $address) (eq $address "::1")) }}
{{- fail (printf "metrics.bindAddress %s is a loopback address: the metrics Service or monitor could not scrape it (leave it empty for 0.0.0.0)" $address) }}
{{- end }}
{{- $address }}
{{- end }}

{{/*
The agent's start-up sysctls (ipvsctl/backend/sysctl.py STARTUP_SYSCTLS; a test keeps the two equal), as YAML.
*/}}
{{- define "ipvsctl.startupSysctls" -}}
net.ipv4.vs.conntrack: "1"
net.ipv4.vs.expire_nodest_conn: "1"
net.ipv4.vs.expire_quiescent_template: "1"
net.ipv4.ip_forward: "1"
{{- end }}

{{/*
The sysctls --strict-arp adds (ipvsctl/backend/sysctl.py STRICT_ARP_SYSCTLS; a test keeps the two equal), as YAML.
*/}}
{{- define "ipvsctl.strictArpSysctls" -}}
net.ipv4.conf.all.arp_ignore: "1"
net.ipv4.conf.all.arp_announce: "2"
{{- end }}

{{/* The sysctls the init container writes, in a stable order, as "name=value" lines: the start-up ones not
skipped, then strict ARP's when agent.strictARP. */}}
{{- define "ipvsctl.initSysctls" -}}
{{- if eq .Values.sysctls.mode "initContainer" }}
{{- $all := include "ipvsctl.startupSysctls" . | fromYaml }}
{{- range $name := keys $all | sortAlpha }}
{{- if not (has $name $.Values.sysctls.skip) }}
{{ $name }}={{ get $all $name }}
{{- end }}
{{- end }}
{{- if .Values.agent.strictARP }}
{{- $arp := include "ipvsctl.strictArpSysctls" . | fromYaml }}
{{- range $name := keys $arp | sortAlpha }}
{{ $name }}={{ get $arp $name }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A monitor's scrape endpoint settings after its port (ServiceMonitor endpoints[] and PodMonitor
podMetricsEndpoints[] share them): the chart's relabeling first (each target is named after its node), then the user's.
*/}}
{{- define "ipvsctl.scrapeEndpoint" -}}
path: /metrics
interval: {{ .interval }}
scrapeTimeout: {{ .scrapeTimeout }}
relabelings:
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
  {{- with .relabelings }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The alerts docs/operations.md recommends, as a YAML list (alert, expr, for, severity, summary). */}}
{{- define "ipvsctl.alerts" -}}
- alert: IpvsctlNotReady
  expr: ipvsctl_ready == 0
  for: 5m
  severity: warning
  summary: "The agent is not ready: API unreachable, last sync failed, or first sync not done (see /readyz)."
- alert: IpvsctlSyncStale
  expr: time() - ipvsctl_last_successful_sync_timestamp_seconds > 300
  severity: warning
  summary: "The kernel table has not been reconciled for 5 minutes (resyncs run every 30 s)."
- alert: IpvsctlSyncsFailing
  expr: increase(ipvsctl_syncs_total{result="failed"}[10m]) > 3
  severity: warning
  summary: "Syncs fail (logs sync_failed, operation_failed)."
- alert: IpvsctlKernelRefusals
  expr: increase(ipvsctl_errors_total{source=~"operation|backend"}[15m]) > 0
  severity: warning
  summary: "The kernel refused an operation, or netlink is unusable (logs operation_failed, sync_failed)."
- alert: IpvsctlSlowPropagation
  expr: histogram_quantile(0.99, sum by (le) (rate(ipvsctl_event_to_kernel_seconds_bucket[15m]))) > 10
  for: 15m
  severity: warning
  summary: "Endpoint changes reach the kernel late (p99 over 10 s)."
- alert: IpvsctlEventWritesFailing
  expr: increase(ipvsctl_errors_total{source="event"}[30m]) > 0
  severity: warning
  summary: "Event writes fail: RBAC (create/patch events) or API trouble."
- alert: IpvsctlHealthCheckBindFailed
  expr: increase(ipvsctl_errors_total{source="health_check"}[15m]) > 0
  severity: warning
  summary: "A healthCheckNodePort is taken (kube-proxy still running?) or reserved."
- alert: IpvsctlServicesRejected
  expr: max(ipvsctl_services{state="rejected"}) > 0
  for: 30m
  severity: info
  summary: "Some Service is not programmed: see the IpvsctlRejected Events."
- alert: IpvsctlTrafficSeriesDropped
  expr: increase(ipvsctl_traffic_series_dropped_total[1h]) > 0
  severity: info
  summary: "Traffic series are left out: raise agent.trafficMetricsMaxSeries or use service mode."
{{- end }}

{{/* The modules the init container loads, as space-separated names; empty when modules.load is off. */}}
{{- define "ipvsctl.modules" -}}
{{- if .Values.modules.load }}
{{- append .Values.modules.names (printf "ip_vs_%s" .Values.agent.scheduler) | uniq | join " " }}
{{- end }}
{{- end }}

{{/* A number for a flag: whole numbers without a fraction or exponent (900, not 900.0 or 9e+02). */}}
{{- define "ipvsctl.number" -}}
{{- if eq (float64 .) (float64 (int64 .)) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}

{{/* The agent's command-line arguments, as a YAML list (quoted by toYaml where YAML needs it, e.g. "::"). */}}
{{- define "ipvsctl.agentArgs" -}}
{{- $agent := .Values.agent }}
{{- if gt (float64 $agent.minSyncInterval) (float64 $agent.resyncInterval) }}
{{- fail (printf "agent.minSyncInterval (%v) must not be longer than agent.resyncInterval (%v)" $agent.minSyncInterval $agent.resyncInterval) }}
{{- end }}
{{- $args := list "agent"
  (printf "--interface=%s" $agent.interface)
  (printf "--scheduler=%s" $agent.scheduler)
  (printf "--persistence-netmask-v4=%d" ($agent.persistenceNetmaskV4 | int))
  (printf "--persistence-netmask-v6=%d" ($agent.persistenceNetmaskV6 | int))
  (printf "--affinity-scope=%s" $agent.affinityScope)
  (printf "--affinity-switch-delay=%s" (include "ipvsctl.number" $agent.affinitySwitchDelay))
  (printf "--node-port-range=%s" $agent.nodePortRange) }}
{{- range $agent.externalIPCIDRs }}
{{- $args = append $args (printf "--external-ip-cidr=%s" .) }}
{{- end }}
{{- range $agent.loadBalancerIPCIDRs }}
{{- $args = append $args (printf "--load-balancer-ip-cidr=%s" .) }}
{{- end }}
{{- $args = concat $args (list
  (printf "--min-sync-interval=%s" (include "ipvsctl.number" $agent.minSyncInterval))
  (printf "--resync-interval=%s" (include "ipvsctl.number" $agent.resyncInterval))
  (printf "--max-drain-seconds=%s" (include "ipvsctl.number" $agent.maxDrainSeconds))
  (printf "--health-bind=%s" (include "ipvsctl.hostPort" (list .Values.health.bindAddress .Values.health.port)))
  (printf "--metrics-bind=%s" (include "ipvsctl.hostPort" (list (include "ipvsctl.metricsBindAddress" .) .Values.metrics.port)))
  (printf "--health-check-address=%s" $agent.healthCheckAddress)
  (printf "--log-format=%s" .Values.log.format)
  (printf "--log-level=%s" .Values.log.level)
  (printf "--backend=%s" $agent.backend)) }}
{{- range $agent.nodePortAddresses }}
{{- $args = append $args (printf "--nodeport-addresses=%s" .) }}
{{- end }}
{{- if not $agent.netfilter }}
{{- $args = append $args "--no-netfilter" }}
{{- end }}
{{- range $agent.clusterCIDRs }}
{{- $args = append $args (printf "--cluster-cidr=%s" .) }}
{{- end }}
{{- $args = append $args (printf "--masquerade-bit=%d" ($agent.masqueradeBit | int)) }}
{{- if $agent.strictARP }}
{{- $args = append $args "--strict-arp" }}
{{- end }}
{{- $args = concat $args (list
  (printf "--ipvs-tcp-timeout=%d" ($agent.ipvsTCPTimeout | int))
  (printf "--ipvs-tcpfin-timeout=%d" ($agent.ipvsTCPFinTimeout | int))
  (printf "--ipvs-udp-timeout=%d" ($agent.ipvsUDPTimeout | int))) }}
{{- $args = concat $args (list
  (printf "--traffic-metrics=%s" $agent.trafficMetrics)
  (printf "--traffic-metrics-max-series=%d" ($agent.trafficMetricsMaxSeries | int))
  (printf "--traffic-stats-min-age=%s" (include "ipvsctl.number" $agent.trafficStatsMinAge))) }}
{{- range $name, $_ := include "ipvsctl.startupSysctls" . | fromYaml }}
{{- $args = append $args (printf "--no-sysctl=%s" $name) }}
{{- end }}
{{- concat $args $agent.extraArgs | toYaml }}
{{- end }}
