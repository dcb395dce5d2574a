/**
 * The numbers the renderer computes, as pure functions: Kubernetes quantities from kiln's units,
 * probe seconds from kiln's milliseconds, and the replica split of a canary.
 */

const KI = 1024;
const MI = 1024 * KI;
const GI = 1024 * MI;

/**
 * A CPU count as a Kubernetes quantity: whole CPUs as `"2"`, fractions in millicores (`0.5` →
 * `"500m"`, rounded up so a limit never shrinks to nothing).
 *
 * @example
 * cpuQuantity(0.25); // '250m'
 */
export function cpuQuantity(cpus: number): string {
  if (Number.isInteger(cpus)) return String(cpus);
  return `${Math.max(1, Math.ceil(cpus * 1000 - 1e-9))}m`;
}

/**
 * Bytes as a Kubernetes quantity in the largest binary unit that divides them exactly:
 * `268435456` → `"256Mi"`, `1536` → `"1536"` (not a whole KiB multiple would be `"1.5Ki"`, which
 * Kubernetes refuses to round-trip, so plain bytes are kept).
 */
export function memoryQuantity(bytes: number): string {
  for (const [unit, size] of [
    ['Gi', GI],
    ['Mi', MI],
    ['Ki', KI],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** Milliseconds as the whole seconds a probe field takes, rounded up, at least 1. */
export function probeSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** How a replica-ratio canary sizes its two Deployments. */
export interface ReplicaSplit {
  readonly stable: number;
  readonly canary: number;
  /** The canary's actual share of the pods (and so of the traffic a Service spreads evenly), percent. */
  readonly weight: number;
}

/**
 * Splits `replicas` pods between the stable and the canary release for a step of `weight` %: the
 * canary gets `ceil(replicas × weight / 100)` (as kiln's own canary does), and each side keeps at
 * least one pod while its weight is above 0, so a 1-replica service at 10 % runs 1 + 1. The
 * actual weight is what the pods give, which a Service cannot make finer than one pod.
 *
 * @example
 * replicaSplit(10, 25); // { stable: 7, canary: 3, weight: 30 }
 */
export function replicaSplit(replicas: number, weight: number): ReplicaSplit {
  if (replicas === 0) return { stable: 0, canary: 0, weight };
  if (weight <= 0) return { stable: replicas, canary: 0, weight: 0 };
  if (weight >= 100) return { stable: 0, canary: replicas, weight: 100 };
  const canary = Math.max(1, Math.ceil((replicas * weight) / 100));
  const stable = Math.max(1, replicas - canary);
  return { stable, canary, weight: Math.round((canary / (stable + canary)) * 1000) / 10 };
}

/**
 * The canary Deployment's size when a Gateway API route splits the traffic: as kiln's own canary,
 * `ceil(replicas × weight / 100)` beside a stable set kept at full strength.
 */
export function gatewayCanaryReplicas(replicas: number, weight: number): number {
  if (weight <= 0) return 0;
  return Math.min(replicas, Math.max(1, Math.ceil((replicas * weight) / 100)));
}
