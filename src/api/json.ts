/**
 * Records as the documented JSON shapes of `types.ts` (docs/api.md): the one place they are made.
 */
import { summarise } from '../chaos/index.js';
import { canaryStatusOf, releaseSpec, strategyOf, viewOf } from '../fleet/index.js';
import type { ServiceSpec } from '../spec/index.js';
import {
  isTerminalPhase,
  releaseName,
  type ChaosRunRecord,
  type ChaosTerminationRecord,
  type InstanceRecord,
  type ReleaseRecord,
  type RingRecord,
  type RolloutRecord,
  type StateStore,
} from '../state/index.js';
import type {
  ChaosReportJson,
  ChaosRunJson,
  ChaosTerminationJson,
  InstanceJson,
  MetricVerdictJson,
  ReleaseJson,
  RingJson,
  RolloutDetailJson,
  RolloutJson,
  ServiceStatusJson,
} from './types.js';

export function releaseJson(r: ReleaseRecord, current: boolean): ReleaseJson {
  return {
    service: r.service,
    name: r.name,
    digest: r.digest,
    configHash: r.configHash,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    reason: r.reason,
    current,
  };
}

export function rolloutJson(r: RolloutRecord): RolloutJson {
  const message = r.status.conditions.find((c) => c.type === 'Progressing')?.message;
  return {
    id: r.id,
    service: r.service,
    ...(r.fromRelease !== undefined ? { from: releaseName(r.fromRelease) } : {}),
    to: releaseName(r.toRelease),
    strategy: r.strategy,
    phase: r.phase,
    done: isTerminalPhase(r.phase),
    ...(message !== undefined ? { message } : {}),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.finishedAt !== undefined ? { finishedAt: r.finishedAt } : {}),
  };
}

export function instanceJson(i: InstanceRecord, pid?: number): InstanceJson {
  return {
    id: i.id,
    service: i.service,
    release: releaseName(i.release),
    digest: i.digest,
    ...(i.port !== undefined ? { port: i.port } : {}),
    ...(pid !== undefined ? { pid } : {}),
    state: i.state,
    stateSince: i.stateSince,
    ...(i.role !== undefined ? { role: i.role } : {}),
    ...(i.ordinal !== undefined ? { identity: `${i.service}-${i.ordinal}` } : {}),
    health: {
      status: i.health.status,
      failures: i.health.failures,
      ...(i.health.checkedAt !== undefined ? { checkedAt: i.health.checkedAt } : {}),
    },
    createdAt: i.createdAt,
    ...(i.taint !== undefined ? { taint: { ...i.taint } } : {}),
  };
}

/** `kiln status`'s element for service `name`: its current release (else the declared spec) and its instances. */
export function serviceStatusJson(
  store: StateStore,
  name: string,
  now: number,
  host = '127.0.0.1',
): ServiceStatusJson {
  const view = viewOf(store, name, now);
  const spec = view.current
    ? releaseSpec(view.current).service
    : (store.services.get(name).spec as unknown as ServiceSpec);
  const live = store.instances.list({ service: name });
  const tainted = live.filter((i) => i.taint !== undefined).length;
  return {
    name,
    url:
      spec.kind === 'stateful'
        ? `tcp://${host}:${spec.port}${spec.replicas > 1 ? `-${spec.port + spec.replicas - 1}` : ''}`
        : `http://${host}:${spec.port}/`,
    port: spec.port,
    ...(spec.kind === 'stateful' ? { kind: 'stateful' as const } : {}),
    replicas: spec.replicas,
    strategy: spec.strategy.type,
    tier: spec.tier,
    ...(view.current ? { release: view.current.name, digest: view.current.digest } : {}),
    instances: live.length,
    healthy: live.filter((i) => i.state === 'healthy').length,
    ...(tainted > 0 ? { tainted } : {}),
    ...(view.lastRollout ? { rollout: rolloutJson(view.lastRollout) } : {}),
    ...(view.standby
      ? { standby: { release: view.standby.release.name, until: new Date(view.standby.until).toISOString() } }
      : {}),
  };
}

export function ringJson(r: RingRecord): RingJson {
  return {
    id: r.id,
    base: r.base,
    baseDigest: r.baseDigest,
    phase: r.phase,
    message: r.message,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.finishedAt !== undefined ? { finishedAt: r.finishedAt } : {}),
    waves: r.waves,
  };
}

/** A rollout with its conditions and, for a canary, its steps and every look. */
export function rolloutDetailJson(store: StateStore, r: RolloutRecord): RolloutDetailJson {
  const base = { ...rolloutJson(r), conditions: r.status.conditions };
  if (r.strategy !== 'canary' || r.fromRelease === undefined) return base;
  const strategy = strategyOf(r, releaseSpec(store.releases.get(r.service, r.toRelease)).service);
  if (strategy.type !== 'canary') return base;
  const status = canaryStatusOf(r);
  const step = strategy.steps[status.step];
  return {
    ...base,
    canary: {
      step: status.step + 1,
      steps: strategy.steps.map((s) => ({
        weight: s.weight,
        ...(s.analyse !== undefined ? { analyseMs: s.analyse } : {}),
      })),
      weight:
        r.phase === 'succeeded'
          ? 100
          : r.phase === 'rolled-back' || r.phase === 'failed'
            ? 0
            : (step?.weight ?? 100),
      ...(status.window ? { windowStartedAt: status.window.startedAt } : {}),
      looks: status.looks.map((l) => ({
        step: l.step + 1,
        weight: l.weight,
        look: l.look,
        looks: l.looks,
        at: l.at,
        score: (l.score as number | null) ?? null,
        decision: l.decision,
        reason: l.reason,
        samples: l.samples,
        // Stored through jsonSafe: the judge's NaNs are nulls, as MetricVerdictJson has them.
        metrics: l.metrics as unknown as readonly MetricVerdictJson[],
        warnings: l.warnings,
      })),
    },
  };
}

export function chaosRunJson(r: ChaosRunRecord): ChaosRunJson {
  return {
    id: r.id,
    ...(r.service !== undefined ? { service: r.service } : {}),
    mode: r.mode,
    kills: r.kills,
    intervalMs: r.intervalMs,
    dryRun: r.dryRun,
    phase: r.phase,
    message: r.message,
    createdBy: r.createdBy,
    startedAt: r.startedAt,
    ...(r.finishedAt !== undefined ? { finishedAt: r.finishedAt } : {}),
    ...(r.requests !== undefined ? { requests: r.requests } : {}),
    ...(r.failed !== undefined ? { failed: r.failed } : {}),
  };
}

export function chaosTerminationJson(t: ChaosTerminationRecord): ChaosTerminationJson {
  const since = (at: string | undefined) =>
    at === undefined ? undefined : Date.parse(at) - Date.parse(t.startedAt);
  const recoveryMs = since(t.recoveredAt);
  const detectionMs = since(t.detectedAt);
  return {
    id: t.id,
    ...(t.runId !== undefined ? { runId: t.runId } : {}),
    service: t.service,
    instance: t.instance,
    mode: t.mode,
    dryRun: t.dryRun,
    outcome: t.outcome,
    reason: t.reason,
    startedAt: t.startedAt,
    ...(t.detectedAt !== undefined ? { detectedAt: t.detectedAt } : {}),
    ...(t.recoveredAt !== undefined ? { recoveredAt: t.recoveredAt } : {}),
    ...(t.replacement !== undefined ? { replacement: t.replacement } : {}),
    ...(t.failedRequests !== undefined ? { failedRequests: t.failedRequests } : {}),
    ...(recoveryMs !== undefined ? { recoveryMs } : {}),
    ...(detectionMs !== undefined ? { detectionMs } : {}),
  };
}

/** A run's (or the last day's) terminations, with MTTR and availability. */
export function chaosReportJson(
  run: ChaosRunRecord | undefined,
  terminations: readonly ChaosTerminationRecord[],
): ChaosReportJson {
  const requests = run?.requests ?? 0;
  const failed = run?.failed ?? 0;
  const s = summarise(
    terminations
      .filter((t) => t.outcome === 'terminated')
      .map((t) => ({
        mode: t.mode,
        startedAt: Date.parse(t.startedAt),
        ...(t.detectedAt !== undefined ? { detectedAt: Date.parse(t.detectedAt) } : {}),
        ...(t.recoveredAt !== undefined ? { recoveredAt: Date.parse(t.recoveredAt) } : {}),
        ...(t.failedRequests !== undefined ? { failedRequests: t.failedRequests } : {}),
      })),
    { requests, failed },
  );
  return {
    ...(run ? { run: chaosRunJson(run) } : {}),
    kills: s.kills,
    recovered: s.recovered,
    mttrMs: s.mttrMs,
    detectMs: s.detectMs,
    availability: run?.requests !== undefined ? s.availability : null,
    requests,
    failed,
    terminations: terminations.map(chaosTerminationJson),
  };
}
