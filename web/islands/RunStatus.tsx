// A run's status badge. While the run page polls a RUNNING run (MetricCharts), the polled status
// lands in `polledStatus`, a signal shared by the islands of the page, so the badge follows.
import { signal } from "@preact/signals";

export const polledStatus = signal<string | null>(null);

export function RunStatus(props: { status: string }) {
  const status = polledStatus.value ?? props.status;
  return <span class={`status ${status}`} id="run-status">{status}</span>;
}
