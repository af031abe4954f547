#!/usr/bin/env python3
"""Writes the Grafana dashboards in dashboards/ (mana-sync.json, mana-credits.json).

    python3 deploy/observability/grafana/dashboards.py

The JSON files are committed; edit this script and run it again rather than editing them
(or edit them in Grafana and export, keeping the uid). Every PromQL expression here is
checked by Tests/SystemTests/ObservabilityTests.swift against what the services export.
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39  # Grafana 11.x
DATASOURCE = {"type": "prometheus", "uid": "mana-prometheus"}
RATE = "$__rate_interval"


def eq(label, value):
    return f'{label}="{value}"'


def re(label, value):
    return f'{label}=~"{value}"'


class Dashboard:
    def __init__(self, uid, title, job, description):
        self.uid, self.title, self.job, self.description = uid, title, job, description
        self.panels = []
        self.x = self.y = 0
        self.row_height = 0

    def sel(self, metric, *matchers):
        """`metric{job="…",instance=~"$instance",…}`."""
        inner = [f'job="{self.job}"', 'instance=~"$instance"'] + list(matchers)
        return f"{metric}{{{','.join(inner)}}}"

    def row(self, title):
        self._newline()
        self.panels.append({"id": len(self.panels) + 1, "type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.row_height
            self.x = 0
            self.row_height = 0

    def panel(self, title, targets, unit="short", kind="timeseries", width=12, height=8, description="", thresholds=None,
              min_value=None, max_value=None, mappings=None):
        if self.x + width > 24:
            self._newline()
        defaults = {"unit": unit}
        if min_value is not None:
            defaults["min"] = min_value
        if max_value is not None:
            defaults["max"] = max_value
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in thresholds]}
        if mappings:
            defaults["mappings"] = mappings
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": False}
            if thresholds:
                defaults["custom"]["thresholdsStyle"] = {"mode": "line"}
        panel = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "range": True}
                        for i, (expr, legend) in enumerate(targets)],
        }
        if kind == "timeseries":
            panel["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                                "tooltip": {"mode": "multi", "sort": "desc"}}
        else:
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background",
                                "graphMode": "none", "textMode": "auto", "orientation": "auto"}
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def http(self):
        self.row("HTTP: requests, errors, latency per route")
        self.panel("Request rate per route", [(f"sum by (route) (rate({self.sel('http_requests_total')}[{RATE}]))", "{{route}}")],
                   unit="reqps", description="http_requests_total: every answered request (WebSocket upgrades are not counted here).")
        self.panel("5xx ratio per route", [
            (f"sum by (route) (rate({self.sel('http_requests_total', re('status', '5..'))}[{RATE}])) / "
             f"sum by (route) (rate({self.sel('http_requests_total')}[{RATE}]))", "{{route}}")],
            unit="percentunit", min_value=0, thresholds=[(None, "green"), (0.02, "red")],
            description="Share of answers that are 5xx (a lost database is 503). Alert: ManaHigh5xxRatio.")
        self.panel("Error answers by status", [
            (f"sum by (status) (rate({self.sel('http_requests_total', re('status', '4..|5..'))}[{RATE}]))", "{{status}}")],
            unit="reqps", description="4xx and 5xx per status code.")
        self.panel("Latency p50 / p99 per route", [
            (f"histogram_quantile(0.99, sum by (le, route) (rate({self.sel('http_request_duration_seconds_bucket')}[{RATE}])))",
             "p99 {{route}}"),
            (f"histogram_quantile(0.5, sum by (le, route) (rate({self.sel('http_request_duration_seconds_bucket')}[{RATE}])))",
             "p50 {{route}}")],
            unit="s", description="http_request_duration_seconds, time to the answer's head (an SSE stream's lifetime is not in it).")

    def resources(self):
        self.row("Process and database pool")
        self.panel("Resident memory (RSS)", [
            (f"{self.sel('process_resident_memory_bytes')}", "RSS {{instance}}"),
            (f"{self.sel('process_memory_limit_bytes')} > 0", "container limit {{instance}}")],
            unit="bytes", min_value=0, description="process_resident_memory_bytes from /proc; the limit is the cgroup's (absent without one). Alert: ManaMemoryNearLimit.")
        self.panel("CPU", [(f"rate({self.sel('process_cpu_seconds_total')}[{RATE}])", "{{instance}}")],
                   unit="percentunit", min_value=0, description="CPU seconds per second (1.0 = one core).")
        self.panel("PostgreSQL pool use", [
            (f"sum by (instance) ({self.sel('db_pool_connections_in_use')})", "in use {{instance}}"),
            (f"sum by (instance) ({self.sel('db_pool_lease_waiting')})", "waiting for a connection {{instance}}"),
            (f"max by (instance) ({self.sel('db_pool_connections_max')})", "pool size {{instance}}")],
            min_value=0, description="Leases held by requests and background work, leases queued for a connection, and DATABASE_POOL_SIZE.")
        self.panel("Open file descriptors", [(f"{self.sel('process_open_fds')}", "{{instance}}")],
                   min_value=0, description="Sockets included: every WebSocket and SSE stream holds one.")

    def json(self):
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["mana"], "timezone": "browser",
            "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1, "refresh": "30s",
            "time": {"from": "now-6h", "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
                                      "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": [],
            "templating": {"list": [{
                "name": "instance", "label": "instance", "type": "query", "datasource": DATASOURCE,
                "query": {"query": f'label_values(process_resident_memory_bytes{{job="{self.job}"}}, instance)', "refId": "instance"},
                "definition": f'label_values(process_resident_memory_bytes{{job="{self.job}"}}, instance)',
                "includeAll": True, "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
                "refresh": 2, "sort": 1, "hide": 0, "regex": "", "options": []}]},
            "panels": self.panels,
        }


def sync():
    d = Dashboard("mana-sync", "mana-sync", "mana-sync", "mana-sync: push/pull, realtime, billing gate, listener, resources.")
    d.http()
    d.row("Sync")
    d.panel("Changes per second", [
        (f"sum(rate({d.sel('sync_changes_stored_total')}[{RATE}]))", "pushed (stored)"),
        (f"sum(rate({d.sel('sync_changes_returned_total')}[{RATE}]))", "returned (pull pages and push answers)")],
        unit="cps", description="sync_changes_stored_total, sync_changes_returned_total.")
    d.panel("Pushes and pulls per second", [
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/sync/{appId}'), eq('status', '200'))}[{RATE}]))", "push 200"),
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/sync/{appId}/pull'), eq('status', '200'))}[{RATE}]))", "pull 200")],
        unit="reqps")
    d.row("Realtime: WebSockets and SSE")
    d.panel("WebSocket connections", [
        (f"sum({d.sel('sync_ws_connections')})", "connections"),
        (f"sum({d.sel('sync_ws_users')})", "users")], min_value=0, description="Authenticated WebSockets now (all replicas).")
    d.panel("WebSocket drops and closes", [
        (f"sum(rate({d.sel('sync_ws_dropped_slow_total')}[{RATE}]))", "dropped: too slow"),
        (f"sum(rate({d.sel('sync_ws_evicted_total')}[{RATE}]))", "evicted: per-user cap"),
        (f"sum by (reason) (rate({d.sel('sync_ws_closed_total')}[{RATE}]))", "closed: {{reason}}"),
        (f"sum by (reason) (rate({d.sel('sync_ws_auth_failures_total')}[{RATE}]))", "auth failed: {{reason}}")],
        unit="ops", description="A slow client whose queue fills is dropped; a user's oldest socket goes past the per-user cap.")
    d.panel("SSE streams", [
        (f"sum({d.sel('sync_sse_streams')})", "streams")], min_value=0, description="Open SSE streams now (all replicas).")
    d.panel("SSE closes and shared reads", [
        (f"sum(rate({d.sel('sync_sse_evicted_total')}[{RATE}]))", "evicted: per-user cap"),
        (f"sum by (reason) (rate({d.sel('sync_sse_closed_total')}[{RATE}]))", "closed: {{reason}}"),
        (f"sum by (shared) (rate({d.sel('sync_sse_reads_total')}[{RATE}]))", "reads, shared={{shared}}")], unit="ops")
    d.panel("Notifications sent", [
        (f"sum(rate({d.sel('sync_notifications_sent_total')}[{RATE}]))", "sync-available / changes sent"),
        (f"sum(rate({d.sel('sync_notices_sent_total')}[{RATE}]))", "push notices to the replicas (NOTIFY)"),
        (f"sum(rate({d.sel('sync_notices_dropped_total')}[{RATE}]))", "push notices lost (database error, queue full)")],
            unit="ops", width=24, height=6,
            description="A push is announced to every replica after its commit, many per NOTIFY; a lost notice delays clients to their next pull.")
    d.row("Billing gate (mana-credits)")
    d.panel("Gate decisions", [(f"sum by (decision) (rate({d.sel('sync_billing_decisions_total')}[{RATE}]))", "{{decision}}")],
            unit="ops", description="allowed, denied (402), failed_open (mana-credits unreachable or the breaker open). Alert: ManaSyncFailOpenRising.")
    d.panel("Breaker open", [(f"max by (instance) ({d.sel('sync_billing_breaker_open')})", "{{instance}}")], kind="stat", width=6,
            thresholds=[(None, "green"), (1, "red")],
            mappings=[{"type": "value", "options": {"0": {"text": "closed"}, "1": {"text": "OPEN"}}}],
            description="1: no status calls for the cool-down; every uncached user passes (fail-open). Alert: ManaSyncBillingBreakerOpen.")
    d.panel("Cache hits", [
        (f"sum(rate({d.sel('sync_billing_cache_total', eq('result', 'hit'))}[{RATE}])) / sum(rate({d.sel('sync_billing_cache_total')}[{RATE}]))",
         "hit ratio")], kind="stat", unit="percentunit", width=6)
    d.panel("Status-call latency", [
        (f"histogram_quantile(0.99, sum by (le) (rate({d.sel('sync_billing_status_call_duration_seconds_bucket')}[{RATE}])))", "p99"),
        (f"histogram_quantile(0.5, sum by (le) (rate({d.sel('sync_billing_status_call_duration_seconds_bucket')}[{RATE}])))", "p50")],
        unit="s", description="GET /api/v1/internal/sync/status/:userId on mana-credits, timeouts included.")
    d.panel("Status calls by outcome", [
        (f"sum by (outcome) (rate({d.sel('sync_billing_status_calls_total')}[{RATE}]))", "{{outcome}}"),
        (f"sum(rate({d.sel('sync_billing_invalidations_total')}[{RATE}]))", "invalidations from mana-credits")], unit="ops")
    d.row("Change listener (LISTEN/NOTIFY)")
    d.panel("Listener connected", [(f"min by (instance) ({d.sel('sync_listener_connected')})", "{{instance}}")], kind="stat", width=12,
            thresholds=[(None, "red"), (1, "green")],
            mappings=[{"type": "value", "options": {"0": {"text": "DOWN"}, "1": {"text": "listening"}}}],
            description="0: this replica hears no pushes from the others and no invalidations. Alert: ManaSyncListenerDown.")
    d.panel("Listener reconnects", [(f"sum by (instance) (increase({d.sel('sync_listener_reconnects_total')}[{RATE}]))", "{{instance}}")])
    d.row("Shared spaces")
    d.panel("Membership lookups", [
        (f"sum by (result) (rate({d.sel('sync_membership_lookups_total')}[{RATE}]))", "{{result}}"),
        (f"sum(rate({d.sel('sync_membership_invalidations_total')}[{RATE}]))", "invalidations")],
        unit="ops", description="hit: cached answer; miss: asked mana-auth; stale: mana-auth failed, an answer up to 15 min old served; "
                                "failed: no usable answer (reads own rows only, space writes 503). docs/sync.md, Shared spaces.")
    d.panel("Members told per push into a space", [
        (f"histogram_quantile(0.5, sum by (le) (rate({d.sel('sync_space_fanout_users_bucket')}[{RATE}])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate({d.sel('sync_space_fanout_users_bucket')}[{RATE}])))", "p99")],
        description="Per replica and push: listening members (other than the author) sent sync-available or woken.")
    d.row("History compaction")
    d.panel("Rows folded and removed", [
        (f"sum(increase({d.sel('sync_compaction_rows_removed_total')}[1h]))", "removed"),
        (f"sum(increase({d.sel('sync_compaction_rows_folded_total')}[1h]))", "folded updates written"),
        (f"sum(increase({d.sel('sync_compaction_records_skipped_total')}[1h]))", "records skipped")],
            description="Per hour. Changes older than SYNC_COMPACT_AFTER fold into at most two rows per record (docs/sync.md).")
    d.panel("Runs by outcome", [
        (f"sum by (outcome) (increase({d.sel('sync_compaction_runs_total')}[1h]))", "{{outcome}}")],
            description="Per hour, all replicas (each runs every SYNC_COMPACT_INTERVAL; a replica skips histories another is folding). "
                        "Alert: ManaSyncCompactionFailing. sync_changes_table_bytes has the table's size after each run.")
    d.resources()
    return d


def credits():
    d = Dashboard("mana-credits", "mana-credits", "mana-credits",
                  "mana-credits: ledger, subscriptions and the recurring charge, outbox, gifts, audit, resources.")
    d.http()
    d.row("Ledger")
    use = 'route=~"/api/v1/credits/use|/api/v1/internal/credits/use"'
    d.panel("Debits per second", [
        (f"sum by (route) (rate({d.sel('http_requests_total', use, eq('status', '200'))}[{RATE}]))", "use {{route}}"),
        (f"sum(rate({d.sel('credits_sync_renewals_total', eq('outcome', 'charged'))}[{RATE}]))", "Cloud Sync renewals"),
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/api/v1/sync/activate'), eq('status', '200'))}[{RATE}]))", "Cloud Sync activations"),
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/api/v1/gifts'), eq('method', 'POST'), eq('status', '201'))}[{RATE}]))", "gift codes bought")],
        unit="ops", description="Successful debits: the use endpoints, renewals, activations and gift purchases (each is one ledger debit).")
    d.panel("Credits per second", [
        (f"sum(rate({d.sel('credits_stripe_webhooks_total', eq('outcome', 'applied'))}[{RATE}]))", "purchases (Stripe webhook applied)"),
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/api/v1/internal/credits/refund'), eq('status', '200'))}[{RATE}]))", "refunds"),
        (f"sum(rate({d.sel('http_requests_total', eq('route', '/api/v1/gifts/{code}/redeem'), eq('status', '200'))}[{RATE}]))", "gift redemptions")],
        unit="ops", description="Ledger credits: purchases, internal refunds (a repeated key answers 200 too), redeemed gifts.")
    d.panel("402 Payment Required per route", [
        (f"sum by (route) (rate({d.sel('http_requests_total', eq('status', '402'))}[{RATE}]))", "{{route}}")],
        unit="reqps", description="Debits refused for missing credits (use, activation, gift purchase).")
    d.panel("Stripe webhooks", [
        (f"sum by (outcome) (rate({d.sel('credits_stripe_webhooks_total')}[{RATE}]))", "{{outcome}}")],
        unit="ops", description="applied, duplicate (Stripe redelivered), bad_signature (a forged or misconfigured call).")
    d.row("Cloud Sync subscriptions and the recurring charge")
    d.panel("Recurring-charge runs (per hour)", [
        (f"sum(increase({d.sel('credits_sync_renewal_runs_total')}[1h]))", "runs"),
        (f"sum by (outcome) (increase({d.sel('credits_sync_renewals_total')}[1h]))", "renewals {{outcome}}")],
        description="Runs of chargeDue (the in-process scheduler or POST charge-recurring) and what they did. Alerts: ManaCreditsRecurringChargeNotRun, …Failing.")
    d.panel("Since the last recurring-charge run", [
        (f"time() - max({d.sel('credits_sync_renewal_last_run_timestamp_seconds')})", "seconds ago")], kind="stat", unit="s", width=6,
        thresholds=[(None, "green"), (7200, "orange"), (10800, "red")])
    d.panel("Paused subscriptions (24 h)", [
        (f"sum(increase({d.sel('credits_sync_renewals_total', eq('outcome', 'paused'))}[24h]))", "unpaid"),
        (f"sum(increase({d.sel('credits_sync_renewal_failure_pauses_total')}[24h]))", "after repeated failures")],
        kind="stat", width=6, description="Subscriptions paused by the recurring charge in the last day.")
    d.panel("Activations and invalidations", [
        (f"sum by (interval) (rate({d.sel('credits_sync_activations_total')}[{RATE}]))", "activations {{interval}}"),
        (f"sum by (outcome) (rate({d.sel('credits_sync_invalidations_total')}[{RATE}]))", "mana-sync told: {{outcome}}")],
        unit="ops")
    d.panel("Renewal failures", [
        (f"sum(increase({d.sel('credits_sync_renewal_failures_total')}[1h]))", "failed renewals (retried)")],
        description="A renewal that failed for another reason than missing credits; retried with backoff, paused after SYNC_RENEWAL_MAX_FAILURES.")
    d.row("Notification outbox (mana-notify)")
    d.panel("Outbox backlog", [
        (f"max({d.sel('credits_outbox_pending')})", "undelivered messages"),
        (f"max({d.sel('credits_outbox_oldest_pending_seconds')})", "oldest (s)")],
        min_value=0, description="credits.outbox rows not yet delivered (the same table for every replica: max, not sum). Alerts: ManaCreditsOutboxBacklogGrowing, …Stuck.")
    d.panel("Outbox deliveries", [
        (f"sum by (outcome) (rate({d.sel('credits_outbox_attempts_total')}[{RATE}]))", "{{outcome}}")], unit="ops")
    d.row("Gifts")
    d.panel("Gift redemptions by answer", [
        (f"sum by (status) (rate({d.sel('http_requests_total', eq('route', '/api/v1/gifts/{code}/redeem'))}[{RATE}]))", "{{status}}")],
        unit="reqps", description="200 redeemed; 400/403/404 refused (each refusal is a failed_* row); 429 rate-limited.")
    d.panel("Rate-limit hits (429)", [
        (f"sum by (route) (rate({d.sel('http_requests_total', eq('status', '429'))}[{RATE}]))", "{{route}}")],
        unit="reqps", description="GIFT_LOOKUP_LIMIT / GIFT_REDEEM_LIMIT per replica.")
    d.row("Ledger audit")
    d.panel("Audit violations (last run)", [(f"max({d.sel('credits_ledger_audit_violations')})", "violations")], kind="stat", width=8,
            thresholds=[(None, "green"), (1, "red")], description="LEDGER_AUDIT_INTERVAL. Alert: ManaCreditsLedgerAuditViolations.")
    d.panel("Audit runs (24 h)", [(f"sum by (outcome) (increase({d.sel('credits_ledger_audit_runs_total')}[24h]))", "{{outcome}}")],
            kind="stat", width=8)
    d.panel("Since the last audit", [(f"time() - max({d.sel('credits_ledger_audit_last_run_timestamp_seconds')})", "seconds ago")],
            kind="stat", unit="s", width=8)
    d.resources()
    return d


def main():
    for dashboard in (sync(), credits()):
        path = HERE / "dashboards" / f"{dashboard.uid}.json"
        path.write_text(json.dumps(dashboard.json(), indent=2, ensure_ascii=False) + "\n")
        print(path)


if __name__ == "__main__":
    main()
