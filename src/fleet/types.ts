import type { StrategySpec } from '../spec/index.js';
import type { InstanceRole } from '../state/index.js';

/** An instance's lifecycle: `starting → healthy ⇄ unhealthy → draining → stopped`, plus `tainted`. */
export type InstancePhase = 'starting' | 'healthy' | 'unhealthy' | 'draining' | 'stopped' | 'tainted';

/** An instance as the controller observes it (runtime state and health, merged). */
export interface ObservedInstance {
  readonly id: string;
  readonly service: string;
  /** The release it runs, `r3`. */
  readonly release: string;
  readonly phase: InstancePhase;
  /** When it entered `phase`, in ms since the epoch. */
  readonly since: number;
  /** A canary analysis's baseline (old release) or canary (new release); absent on stable instances. */
  readonly role?: InstanceRole;
  /** A stateful identity's ordinal (`db-1` is 1); absent on stateless instances. */
  readonly ordinal?: number;
  /** The controller is stopping it: it still holds its identity (port, volume) until it is gone. */
  readonly stopping?: boolean;
  /** A stateful service's `ready` check has passed since it became healthy (always true without one). */
  readonly ready?: boolean;
  /**
   * A `tainted` instance that was healthy, so serving, when it was tainted: it may serve on until
   * its replacement is healthy (see the planner's `reconcileTainted`).
   */
  readonly wasServing?: boolean;
}

/** A release the planner may run: its name and image digest. */
export interface ReleaseRef {
  readonly name: string;
  readonly digest: string;
}

/** A service's rollout as stored: what it moves from and to, and where it stands. */
export interface RolloutState {
  readonly id: string;
  readonly from?: ReleaseRef;
  readonly to: ReleaseRef;
  readonly phase: 'progressing' | 'paused' | 'succeeded' | 'rolled-back' | 'failed';
  readonly startedAt: number;
  /** Blue/green: when traffic was switched to green. */
  readonly switchedAt?: number;
  /** Canary: the step being worked on (index into the strategy's steps) and when it began. */
  readonly canary?: { readonly step: number; readonly stepStartedAt: number };
}

/** What a service should be: its spec, the release it runs, and the rollout in flight (if any). */
export interface DesiredService {
  readonly name: string;
  readonly replicas: number;
  /** The loopback port the router serves the service on; a stateful identity k listens on port + k. */
  readonly port: number;
  /** Stateful services keep identities and are updated one instance at a time. @default stateless */
  readonly kind?: 'stateless' | 'stateful';
  readonly strategy: StrategySpec;
  /** The release that should be running once any rollout is over. */
  readonly release: ReleaseRef;
  readonly rollout?: RolloutState;
  /** Blue/green: the previous release kept warm for an instant rollback, until `until` (ms). */
  readonly standby?: { readonly release: ReleaseRef; readonly until: number };
  /** A rollout with no progress for this long fails and rolls back. */
  readonly progressDeadlineMs: number;
}

/** Why an instance is stopped. */
export type StopReason = 'superseded' | 'unhealthy' | 'exited' | 'tainted' | 'surplus' | 'standby-expired';

/** One step the executor carries out. Actions are data; the planner never performs them. */
export type Action =
  | {
      readonly type: 'start';
      readonly service: string;
      readonly release: ReleaseRef;
      readonly role?: InstanceRole;
      /** A stateful identity to start. */
      readonly ordinal?: number;
    }
  | {
      readonly type: 'stop';
      readonly service: string;
      readonly id: string;
      readonly reason: StopReason;
      readonly drain: boolean;
    }
  | {
      readonly type: 'route';
      readonly service: string;
      readonly backends: readonly { readonly id: string; readonly weight: number }[];
    }
  | {
      readonly type: 'rollout';
      readonly service: string;
      readonly id: string;
      readonly phase: RolloutState['phase'];
      readonly reason: string;
      readonly switchedAt?: number;
      /** The Progressing condition's reason when it fails. @default ProgressDeadlineExceeded */
      readonly cause?: string;
    };
