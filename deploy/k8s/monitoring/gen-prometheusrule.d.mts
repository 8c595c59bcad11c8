/** The PrometheusRule text for a Prometheus rule file's text (see gen-prometheusrule.mjs). */
export function renderPrometheusRule(rulesText: string): string;
