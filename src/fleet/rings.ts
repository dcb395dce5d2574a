/**
 * Base-image promotion rings: how a new base image (a security patch, say) reaches every service
 * built on it through the same pipeline as any release. The services are released in waves by
 * `tier`, lowest (least important) first, each service by canary. A wave whose canaries all pass
 * lets the next one start; a wave with a failed canary is rolled back as a whole, the ring stops,
 * and the later waves are never touched.
 *
 * The ring is state in the store, moved on by {@link RingRunner.tick}, so a restarted control plane
 * carries on where the last one stopped.
 */
import { KilnError } from '../errors/index.js';
import { isTerminalPhase, type RingRecord, type RingService, type RingWave } from '../state/index.js';
import { viewOf } from './desired.js';
import { deploy, rollback, type OperationsContext } from './operations.js';

/** A service to release on the new base: the image rebaked on it, by digest. */
export interface RingTarget {
  readonly service: string;
  readonly image: string;
  readonly digest: string;
}

/** What `startRing` needs. */
export interface RingInput {
  readonly base: string;
  readonly baseDigest: string;
  readonly targets: readonly RingTarget[];
  readonly actor: string;
}

/** Groups `targets` by their services' declared tiers, lowest first, and records a running ring. */
export async function startRing(ctx: OperationsContext, input: RingInput): Promise<RingRecord> {
  const byTier = new Map<number, RingService[]>();
  for (const t of input.targets) {
    const spec = await ctx.declared(t.service);
    byTier.set(spec.tier, [
      ...(byTier.get(spec.tier) ?? []),
      { service: t.service, image: t.image, digest: t.digest },
    ]);
  }
  const waves: RingWave[] = [...byTier.entries()]
    .sort(([a], [b]) => a - b)
    .map(([tier, services]) => ({
      tier,
      phase: 'pending' as const,
      services: services.sort((a, b) => (a.service < b.service ? -1 : 1)),
    }));
  const ring = ctx.store.rings.create({
    base: input.base,
    baseDigest: input.baseDigest,
    waves,
    createdBy: input.actor,
    message: `releasing base ${input.base} to ${input.targets.length} service(s) in ${waves.length} wave(s), tier ${waves.map((w) => w.tier).join(', then ')}`,
  });
  ctx.store.events.append({
    kind: 'ring.started',
    subject: ring.id,
    reason: 'started',
    message: ring.message,
  });
  return ring;
}

/** How often the runner looks at the running ring. */
export const RING_TICK_MS = 500;

/** Moves the running ring on: starts waves, follows their rollouts, stops and rolls back on failure. */
export class RingRunner {
  readonly #ctx: OperationsContext;
  readonly #log: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(ctx: OperationsContext, log: (line: string) => void = () => {}) {
    this.#ctx = ctx;
    this.#log = log;
  }

  /** Ticks every RING_TICK_MS until `close()`. */
  start(): void {
    const loop = () => {
      this.#ticking = this.tick()
        .catch((err: unknown) => this.#log(`rings: ${err instanceof Error ? err.message : String(err)}`))
        .finally(() => {
          this.#ticking = undefined;
          if (this.#timer !== undefined) this.#timer = setTimeout(loop, RING_TICK_MS);
        });
    };
    this.#timer = setTimeout(loop, 0);
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  /** One step of the running ring, if there is one. */
  async tick(): Promise<void> {
    const ring = this.#ctx.store.rings.running();
    if (!ring) return;
    const k = ring.waves.findIndex((w) => w.phase === 'pending' || w.phase === 'running');
    if (k < 0) {
      this.#finish(
        ring,
        'succeeded',
        `base ${ring.base} released to every wave (tier ${ring.waves.map((w) => w.tier).join(', ')})`,
      );
      return;
    }
    const wave = ring.waves[k]!;
    if (wave.phase === 'pending') await this.#startWave(ring, k);
    else await this.#followWave(ring, k);
  }

  async #startWave(ring: RingRecord, k: number): Promise<void> {
    const wave = ring.waves[k]!;
    const services: RingService[] = [];
    for (const s of wave.services) {
      const previous = viewOf(this.#ctx.store, s.service, this.#ctx.clock()).current?.name;
      try {
        const out = await deploy(this.#ctx, {
          service: s.service,
          image: s.digest,
          // A stateful service cannot run a baseline beside its identities: it is updated one
          // instance at a time, and the wave waits for it like any other.
          strategy: (await this.#ctx.declared(s.service)).kind === 'stateful' ? 'rolling' : 'canary',
          actor: `ring ${ring.id}`,
          reason: `base ${ring.base} (${ring.baseDigest.slice(0, 19)}) via ring ${ring.id}, tier ${wave.tier}`,
        });
        this.#audit(
          ring,
          'deploy',
          s.service,
          'ok',
          `${out.release.name} (${s.digest}), rollout ${out.rollout.id}`,
        );
        services.push({
          ...s,
          rollout: out.rollout.id,
          ...(previous ? { previous } : {}),
          ...(out.unchanged
            ? { outcome: 'unchanged' as const, message: `already runs ${s.digest.slice(0, 19)}` }
            : {}),
        });
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        this.#audit(ring, 'deploy', s.service, 'failed', err.message);
        services.push({ ...s, outcome: 'failed', message: `could not deploy: ${err.message}` });
      }
    }
    const started = {
      ...wave,
      phase: 'running' as const,
      services,
      startedAt: new Date(this.#ctx.clock()).toISOString(),
    };
    const next = this.#ctx.store.rings.update(ring.id, ring.version, {
      waves: ring.waves.map((w, i) => (i === k ? started : w)),
      message: `wave ${k + 1} of ${ring.waves.length} (tier ${wave.tier}) is rolling out: ${services.map((s) => s.service).join(', ')}`,
    });
    this.#event(next, 'ring.wave-started', `tier ${wave.tier}: ${services.map((s) => s.service).join(', ')}`);
  }

  async #followWave(ring: RingRecord, k: number): Promise<void> {
    const wave = ring.waves[k]!;
    const services = wave.services.map((s): RingService => {
      if (s.outcome || !s.rollout) return s;
      const r = this.#ctx.store.rollouts.find(s.rollout);
      if (!r || !isTerminalPhase(r.phase)) return s;
      const message = r.status.conditions.find((c) => c.type === 'Progressing')?.message ?? r.phase;
      return { ...s, outcome: r.phase === 'succeeded' ? 'succeeded' : 'failed', message };
    });
    if (services.some((s) => !s.outcome)) {
      if (services.some((s, i) => s !== wave.services[i])) {
        this.#ctx.store.rings.update(ring.id, ring.version, {
          waves: ring.waves.map((w, i) => (i === k ? { ...wave, services } : w)),
        });
      }
      return;
    }
    const now = new Date(this.#ctx.clock()).toISOString();
    const failed = services.filter((s) => s.outcome === 'failed');
    if (failed.length === 0) {
      const done = { ...wave, phase: 'succeeded' as const, services, finishedAt: now };
      const next = this.#ctx.store.rings.update(ring.id, ring.version, {
        waves: ring.waves.map((w, i) => (i === k ? done : w)),
        message: `wave ${k + 1} of ${ring.waves.length} (tier ${wave.tier}) released`,
      });
      this.#event(
        next,
        'ring.wave-succeeded',
        `tier ${wave.tier} released: ${services.map((s) => s.service).join(', ')}`,
      );
      return;
    }
    // The wave failed: the services that took the new base go back, so the wave is whole again.
    const reverted: RingService[] = [];
    for (const s of services) {
      if (s.outcome !== 'succeeded' || !s.previous) {
        reverted.push(s);
        continue;
      }
      try {
        await rollback(this.#ctx, { service: s.service, to: s.previous, actor: `ring ${ring.id}` });
        this.#audit(ring, 'rollback', s.service, 'ok', `to ${s.previous}: its wave failed`);
        reverted.push({
          ...s,
          outcome: 'reverted',
          message: `its wave failed; rolled back to ${s.previous}`,
        });
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        reverted.push({ ...s, message: `its wave failed, but rolling it back failed: ${err.message}` });
      }
    }
    const why = failed.map((s) => `${s.service}: ${s.message ?? 'failed'}`).join('; ');
    const message =
      `stopped at wave ${k + 1} of ${ring.waves.length} (tier ${wave.tier}): ${why}. ` +
      `The wave was rolled back` +
      (k + 1 < ring.waves.length
        ? `; tier ${ring.waves
            .slice(k + 1)
            .map((w) => w.tier)
            .join(', ')} left untouched`
        : '');
    const waves = ring.waves.map((w, i) =>
      i === k
        ? { ...wave, phase: 'rolled-back' as const, services: reverted, finishedAt: now }
        : i > k
          ? { ...w, services: w.services.map((s) => ({ ...s, outcome: 'skipped' as const })) }
          : w,
    );
    const next = this.#ctx.store.rings.update(ring.id, ring.version, { waves, phase: 'failed', message });
    this.#event(next, 'ring.failed', message);
  }

  #finish(ring: RingRecord, phase: 'succeeded', message: string): void {
    const next = this.#ctx.store.rings.update(ring.id, ring.version, { phase, message });
    this.#event(next, `ring.${phase}`, message);
  }

  /** A ring's deploys and rollbacks are changes like any other: the audit log names the ring as actor. */
  #audit(ring: RingRecord, action: string, target: string, result: 'ok' | 'failed', detail: string): void {
    this.#ctx.store.audit.append({ actor: `ring ${ring.id}`, action, target, result, detail });
  }

  #event(ring: RingRecord, kind: string, message: string): void {
    this.#ctx.store.events.append({ kind, subject: ring.id, reason: ring.phase, message });
    this.#log(`ring ${ring.id}: ${message}`);
  }
}
