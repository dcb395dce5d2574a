import { sql as raw } from 'kysely';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { canonicalJson, parseJson } from './json.js';
import { parseReleaseRef, releaseName, type ReleaseName } from './releases.js';
import type { InstancesTable } from './schema.js';
import { sqliteCode, type Sql } from './sqlite.js';
import { ID_RE, Issues, newId } from './validate.js';

/** An instance's lifecycle: `starting → healthy ⇄ unhealthy → draining → stopped`, plus `tainted`. */
export const INSTANCE_STATES = [
  'starting',
  'healthy',
  'unhealthy',
  'draining',
  'stopped',
  'tainted',
] as const;

/** Where an instance is in its lifecycle; `stopped` is final. */
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** A canary rollout's extra instances: the fresh baseline (old release) and the canary (new release). */
export type InstanceRole = 'baseline' | 'canary';

/** What the controller wants of an instance. */
export type InstanceDesiredState = 'running' | 'stopped';

/** The last health-check result the controller recorded. */
export interface InstanceHealthRecord {
  readonly status: 'unknown' | 'passing' | 'failing';
  /** Consecutive failed checks, so a restarted controller keeps counting towards its threshold. */
  readonly failures: number;
  readonly checkedAt?: string;
  readonly message?: string;
}

/** Why an instance can no longer be trusted (drift, an exec into it); it is replaced, never repaired. */
export interface InstanceTaint {
  /** A constant such as `DriftDetected` or `ExecDetected`. */
  readonly reason: string;
  readonly message: string;
  readonly at: string;
}

/** The controller's record of an instance it started. */
export interface InstanceRecord {
  readonly id: string;
  readonly service: string;
  /** The release number it runs. */
  readonly release: number;
  /** The image digest of that release. */
  readonly digest: string;
  readonly port?: number;
  readonly state: InstanceState;
  /** When `state` was entered; health updates that keep the state do not move it. */
  readonly stateSince: string;
  readonly desiredState?: InstanceDesiredState;
  readonly health: InstanceHealthRecord;
  /** Why it was tainted; set once, the first cause is kept. */
  readonly taint?: InstanceTaint;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly stoppedAt?: string;
  /** Set on a canary analysis's baseline and canary instances; absent on stable ones. */
  readonly role?: InstanceRole;
  /** A stateful service's identity ordinal (`db-1` is 1); absent on stateless instances. */
  readonly ordinal?: number;
}

/** An inclusive range of TCP ports. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** What `InstanceRepository.create` needs; the digest is taken from the release. */
export interface NewInstance {
  readonly service: string;
  readonly release: ReleaseName | number;
  /** @default a random `<service>-r<n>-<hex>` */
  readonly id?: string;
  /** A fixed port; refused if a live instance holds it. */
  readonly port?: number;
  /** Allocate the lowest free port in this range, in the same transaction as the record. */
  readonly portRange?: PortRange;
  /** @default "running" */
  readonly desiredState?: InstanceDesiredState;
  /** A canary analysis's baseline or canary. */
  readonly role?: InstanceRole;
  /**
   * A stateful identity's ordinal; refused while a live instance holds it. The id then reads
   * `<service>-<ordinal>-r<n>-<hex>`.
   */
  readonly ordinal?: number;
}

/** The fields `update` may change. A taint given when one is already set is ignored: the first cause stays. */
export interface InstancePatch {
  readonly state?: InstanceState;
  readonly desiredState?: InstanceDesiredState;
  readonly health?: InstanceHealthRecord;
  readonly taint?: Omit<InstanceTaint, 'at'>;
}

const UNKNOWN_HEALTH: InstanceHealthRecord = { status: 'unknown', failures: 0 };

/**
 * The instances the controller started, so that after a restart it can match what the runtime
 * reports to releases. A live (not `stopped`) instance's port is unique in the database.
 */
export class InstanceRepository {
  /** @internal Created by `openState`. */
  constructor(private readonly sql: Sql) {}

  /**
   * Records a new instance in state `starting`, allocating a port from `portRange` in the same
   * transaction when given. Throws NotFoundError for an unknown release and ConflictError when
   * the port is held or the range is full.
   *
   * @example
   * const inst = store.instances.create({ service: 'api', release: 'r3', portRange: { from: 20000, to: 20999 } });
   * runtime.start({ name: inst.id, port: inst.port, image: inst.digest });
   */
  create(input: NewInstance): InstanceRecord {
    const n = parseReleaseRef(input.release);
    const identity = input.ordinal === undefined ? input.service : `${input.service}-${input.ordinal}`;
    const id = input.id ?? newId(`${identity}-${releaseName(n)}-`);
    new Issues()
      .name('service', input.service)
      .check(input.id === undefined || ID_RE.test(input.id), 'id', `${JSON.stringify(input.id)} is not an id`)
      .check(input.port === undefined || isPort(input.port), 'port', 'must be a port number 1–65535')
      .check(
        input.port === undefined || input.portRange === undefined,
        'port',
        'give port or portRange, not both',
      )
      .oneOf('desiredState', input.desiredState ?? 'running', ['running', 'stopped'])
      .check(
        input.role === undefined || input.role === 'baseline' || input.role === 'canary',
        'role',
        'must be "baseline" or "canary"',
      )
      .check(
        input.ordinal === undefined || (Number.isInteger(input.ordinal) && input.ordinal >= 0),
        'ordinal',
        'must be a whole number ≥ 0',
      )
      .throwIfAny(`instance of ${JSON.stringify(input.service)}`);
    return this.sql.tx(() => {
      const release = this.sql.get(
        this.sql.q
          .selectFrom('releases')
          .select('digest')
          .where('service', '=', input.service)
          .where('number', '=', n),
      );
      if (!release) {
        throw new NotFoundError(
          `cannot record an instance of '${input.service}' ${releaseName(n)}: that release does not exist`,
        );
      }
      const port = input.portRange ? this.allocatePort(input.portRange) : (input.port ?? null);
      const now = this.sql.now();
      try {
        this.sql.run(
          this.sql.q.insertInto('instances').values({
            id,
            service: input.service,
            release: n,
            digest: release.digest,
            port,
            state: 'starting',
            state_since: now,
            desired_state: input.desiredState ?? 'running',
            health: canonicalJson(UNKNOWN_HEALTH, 'health'),
            taint: null,
            created_at: now,
            updated_at: now,
            stopped_at: null,
            role: input.role ?? null,
            ordinal: input.ordinal ?? null,
          }),
        );
      } catch (err) {
        const code = sqliteCode(err);
        if (code !== 'SQLITE_CONSTRAINT_UNIQUE' && code !== 'SQLITE_CONSTRAINT_PRIMARYKEY') throw err;
        if (this.find(id)) throw new ConflictError(`instance '${id}' already exists; choose another id`);
        if (input.ordinal !== undefined && this.holderOf(input.service, input.ordinal)) {
          throw new ConflictError(
            `${identity} is already held by live instance ${this.holderOf(input.service, input.ordinal)}; ` +
              'stop it before starting its replacement',
            { cause: err },
          );
        }
        throw new ConflictError(
          `port ${port} is held by live instance ${this.holder(port!)}; choose another port or use portRange`,
          { cause: err },
        );
      }
      return this.get(id);
    });
  }

  /**
   * The lowest port in `range` that no live instance record holds. Only the instance record
   * reserves a port: allocate inside `store.transaction` together with `create` (or pass
   * `portRange` to `create`), or a concurrent writer may take it first.
   */
  allocatePort(range: PortRange): number {
    new Issues()
      .check(
        isPort(range.from) && isPort(range.to) && range.from <= range.to,
        'portRange',
        'must be from ≤ to, in 1–65535',
      )
      .throwIfAny('port range');
    return this.sql.tx(() => {
      const held = this.sql
        .all(
          this.sql.q
            .selectFrom('instances')
            .select('port')
            .where('state', '<>', 'stopped')
            .where('port', '>=', range.from)
            .where('port', '<=', range.to)
            .orderBy('port'),
        )
        .map((r) => r.port!);
      let candidate = range.from;
      for (const port of held) {
        if (port > candidate) break;
        candidate = port + 1;
      }
      if (candidate > range.to) {
        throw new ConflictError(
          `no free port in ${range.from}–${range.to}: live instances hold all ${range.to - range.from + 1}; ` +
            'widen the port range or stop instances',
        );
      }
      return candidate;
    });
  }

  /**
   * Applies `patch` and returns the new record. Entering `stopped` sets `stoppedAt` and frees the
   * port. A stopped instance is final: changing it throws ConflictError.
   */
  update(id: string, patch: InstancePatch): InstanceRecord {
    new Issues()
      .check(patch.state === undefined || INSTANCE_STATES.includes(patch.state), 'state', 'is not a state')
      .check(
        patch.desiredState === undefined || ['running', 'stopped'].includes(patch.desiredState),
        'desiredState',
        'must be running or stopped',
      )
      .throwIfAny(`update of instance ${id}`);
    return this.sql.tx(() => {
      const current = this.get(id);
      if (current.state === 'stopped') {
        throw new ConflictError(`instance ${id} is stopped and cannot change; start a new instance instead`);
      }
      const now = this.sql.now();
      const taint = current.taint ?? (patch.taint && { ...patch.taint, at: now });
      const state = patch.state ?? current.state;
      this.sql.run(
        this.sql.q
          .updateTable('instances')
          .set({
            state,
            state_since: state === current.state ? current.stateSince : now,
            desired_state: patch.desiredState ?? current.desiredState ?? null,
            health: canonicalJson(patch.health ?? current.health, `health of instance ${id}`),
            taint: taint ? canonicalJson(taint, `taint of instance ${id}`) : null,
            updated_at: now,
            stopped_at: state === 'stopped' ? now : null,
          })
          .where('id', '=', id),
      );
      return this.get(id);
    });
  }

  /** The instance `id`, or undefined. */
  find(id: string): InstanceRecord | undefined {
    const row = this.sql.get(this.sql.q.selectFrom('instances').selectAll().where('id', '=', id));
    return row && toInstance(row);
  }

  /** The instance `id`; throws NotFoundError when there is none. */
  get(id: string): InstanceRecord {
    const found = this.find(id);
    if (!found) throw new NotFoundError(`instance '${id}' is not recorded; it was never started by kiln`);
    return found;
  }

  /** Instances, oldest first: of one service when given, and only live ones (not stopped) unless `all`. */
  list(filter: { readonly service?: string; readonly all?: boolean } = {}): InstanceRecord[] {
    let q = this.sql.q.selectFrom('instances').selectAll();
    if (filter.service !== undefined) q = q.where('service', '=', filter.service);
    if (!filter.all) q = q.where('state', '<>', 'stopped');
    return this.sql.all(q.orderBy(raw`rowid`)).map(toInstance);
  }

  private holderOf(service: string, ordinal: number): string | undefined {
    return this.sql.get(
      this.sql.q
        .selectFrom('instances')
        .select('id')
        .where('service', '=', service)
        .where('ordinal', '=', ordinal)
        .where('state', '<>', 'stopped'),
    )?.id;
  }

  private holder(port: number): string {
    const row = this.sql.get(
      this.sql.q
        .selectFrom('instances')
        .select('id')
        .where('port', '=', port)
        .where('state', '<>', 'stopped'),
    );
    return row?.id ?? '(unknown)';
  }
}

function isPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

function toInstance(row: InstancesTable): InstanceRecord {
  return {
    id: row.id,
    service: row.service,
    release: row.release,
    digest: row.digest,
    ...(row.port === null ? {} : { port: row.port }),
    state: row.state as InstanceState,
    stateSince: row.state_since,
    ...(row.desired_state === null ? {} : { desiredState: row.desired_state as InstanceDesiredState }),
    health: parseJson<InstanceHealthRecord>(row.health),
    ...(row.taint === null ? {} : { taint: parseJson<InstanceTaint>(row.taint) }),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(row.stopped_at === null ? {} : { stoppedAt: row.stopped_at }),
    ...(row.role === null ? {} : { role: row.role as InstanceRole }),
    ...(row.ordinal === null ? {} : { ordinal: row.ordinal }),
  };
}
