// Package deploy holds what operators deploy next to director: a Grafana
// dashboard (grafana/director.json) and Prometheus alerting rules with
// their unit tests (prometheus/alerts.yml, prometheus/alerts_test.yml).
// It has no code; its tests check those files against the metrics the
// director really exports, and run promtool on the rules.
package deploy
