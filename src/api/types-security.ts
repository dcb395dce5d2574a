/**
 * The API's known-state and security shapes (docs/api.md): `kiln verify` (an instance against its
 * release), `kiln exec` sessions, and `kiln audit`'s report of every service.
 */

/** Why an instance was tainted: the first cause, kept. */
export interface TaintJson {
  /** `DriftDetected` or `ExecDetected`. */
  readonly reason: string;
  readonly message: string;
  readonly at: string;
}

/** `GET /v1/verify`'s query: one instance, one service's, or every live instance. */
export interface VerifyRequest {
  readonly instance?: string;
  readonly service?: string;
}

/** A difference of an instance's root filesystem from its image's files. */
export interface FileDriftJson {
  /** Root-relative, such as `etc/passwd`. */
  readonly path: string;
  readonly change: 'added' | 'removed' | 'modified';
  /** What differs, such as `sha256 sha256:ab… → sha256:cd…`. */
  readonly detail: string;
}

/** One instance's verdict. */
export interface InstanceVerdictJson {
  readonly id: string;
  readonly service: string;
  readonly release: string;
  readonly digest: string;
  /**
   * `clean`: exactly its release; `drifted`: not, see `files` and `process`; `unverified`: it could
   * not be checked (see `error`), so it is not known to be its release either.
   */
  readonly verdict: 'clean' | 'drifted' | 'unverified';
  readonly files: readonly FileDriftJson[];
  /** Differences of its process (arguments, bundle and live environment) from the release. */
  readonly process: readonly string[];
  readonly error?: string;
  /**
   * Where the files it was compared with come from: the image's attached manifest, the unpack, or
   * (`engine`, an instance on a remote engine) the image's layers, compared by that engine.
   */
  readonly manifest?: 'image' | 'unpacked' | 'engine';
  /**
   * What kiln does about an instance that is tainted (now or before): `replace` it, only `alert`
   * (the service's `drift.action`), or hold the replacement (`held`) while an exec session is open
   * or in its grace period.
   */
  readonly action?: 'replace' | 'alert' | 'held';
  readonly taint?: TaintJson;
}

/** `kiln verify --json`: a full check (every file hashed) of the instances asked for. */
export interface VerifyJson {
  readonly checkedAt: string;
  readonly instances: readonly InstanceVerdictJson[];
  readonly clean: number;
  readonly drifted: number;
  readonly unverified: number;
}

/** `POST /v1/instances/:id/exec`. */
export interface ExecRequest {
  /** The program and its arguments, run inside the instance. */
  readonly command: readonly string[];
  /** Allocate a terminal (`crun exec --tty`). @default false */
  readonly tty?: boolean;
}

/** `POST /v1/exec/:session/end`. */
export interface ExecEndRequest {
  /** The command's exit status, for the audit log and the event. */
  readonly exitCode?: number;
}

/** An exec session, as opened, kept alive or ended. */
export interface ExecSessionJson {
  readonly session: string;
  readonly instance: string;
  readonly service: string;
  readonly actor: string;
  readonly command: readonly string[];
  /**
   * The host command to run, with the caller's stdin, stdout and stderr (`crun … exec [--tty] ID
   * CMD…`); it runs only on the control plane's host, as root. Present when the session opens.
   */
  readonly argv?: readonly string[];
  readonly state: 'open' | 'ended' | 'expired';
  readonly openedAt: string;
  readonly endedAt?: string;
  readonly exitCode?: number;
  /** How often the client must say the session is still open… */
  readonly heartbeatMs: number;
  /** …and how long without it before the session counts as ended. */
  readonly expiresAfterMs: number;
  /** How long after the session ends the instance is replaced (`drift.execGrace`). */
  readonly graceMs: number;
  /** False when the service's `drift.action` is `alert`: the instance is tainted, not replaced. */
  readonly replace: boolean;
}

/** An image signature as the report found it. */
export interface SignerJson {
  /** The key id that signed it (`sha256:` of the public key). */
  readonly keyid: string;
  /** True when it verifies against a key the service trusts. */
  readonly trusted: boolean;
  /** The trusted key's source (a file, or a config field), when trusted. */
  readonly source?: string;
}

/** The image's CycloneDX SBOM, as attached (an OCI referrer artifact of the image). */
export interface SbomJson {
  /** The digest of the SBOM artifact's manifest in the store. */
  readonly digest: string;
  readonly mediaType: string;
  readonly artifactType: string;
  /** The image it describes (the artifact's `subject`). */
  readonly subject: string;
  /** The OCI image layout holding it (`kiln push` carries it along with the image). */
  readonly store: string;
  readonly components: number;
  /** Its packages with the suite each came from, for the archive check. */
  readonly packages: readonly { readonly name: string; readonly version: string; readonly suite: string }[];
}

/** One image digest a service runs. */
export interface RunningImageJson {
  readonly digest: string;
  /** Live instances running it. */
  readonly instances: number;
  /** The releases it is, such as `r4`. */
  readonly releases: readonly string[];
  /** Null when no signature verifies against a trusted key; `signers` lists what was found. */
  readonly signer: SignerJson | null;
  readonly signers: readonly SignerJson[];
  /** Why the signatures could not be checked (the service's trusted keys unreadable, say). */
  readonly signerError?: string;
  readonly sbom: SbomJson | null;
}

/** An instance tainted within the report's window. */
export interface TaintedInstanceJson {
  readonly id: string;
  readonly release: string;
  readonly state: string;
  readonly taint: TaintJson;
}

/** One service of `kiln audit`. */
export interface ServiceAuditJson {
  readonly service: string;
  /** The current release, absent before the first deploy. */
  readonly release?: string;
  readonly images: readonly RunningImageJson[];
  readonly tainted: readonly TaintedInstanceJson[];
}

/** `GET /v1/audit/report`: what the control plane knows of every service's images and taints. */
export interface SecurityReportJson {
  readonly generatedAt: string;
  /** Instances tainted at or after this time are listed (the last day). */
  readonly taintedSince: string;
  readonly services: readonly ServiceAuditJson[];
}

/** The control plane's known-state and security operations (part of {@link ControlPlane}). */
export interface SecurityPlane {
  /** A full check (every file hashed) of the instances asked for; drift taints, as the background check does. */
  verify(request: VerifyRequest): Promise<VerifyJson>;
  /** Opens an audited exec session in `instance`; it is tainted at once. */
  execOpen(instance: string, request: ExecRequest, actor: string): Promise<ExecSessionJson>;
  /** Keeps an exec session open. */
  execHeartbeat(session: string, actor: string): Promise<ExecSessionJson>;
  /** Ends an exec session; its instance's grace period starts. */
  execEnd(session: string, request: ExecEndRequest, actor: string): Promise<ExecSessionJson>;
  /** Every service's running images (signer, SBOM) and its instances tainted in the last day. */
  securityReport(): Promise<SecurityReportJson>;
}
