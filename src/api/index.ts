/**
 * The `api` context: the control plane's HTTP API (bearer tokens with scopes, JSON routes under
 * `/v1`), the one typed client the CLI uses, and how a client finds a running server. Other
 * contexts import only this file. See docs/api.md.
 */
export * from './types.js';
export { authenticate, authorize, hasScope, type Caller, type TokenVerifier } from './auth.js';
export type { AuditSink } from './audit.js';
export type { TokenStore } from './tokens.js';
export {
  makeSelfSigned,
  readTlsFiles,
  SELF_SIGNED_HINT,
  type SelfSignedCert,
  type TlsFiles,
  type TlsMaterial,
} from './tls.js';
export { INTERNAL_ERROR_MESSAGE, MAX_BODY_BYTES, MAX_DRAIN_BYTES } from './http.js';
export { ROUTES, type AuditSubject, type Route } from './routes.js';
export {
  DEFAULT_API_HOST,
  DEFAULT_CLOSE_GRACE_MS,
  startApiServer,
  type ApiServer,
  type ApiServerOptions,
} from './server.js';
export {
  ApiClient,
  DEFAULT_API_TIMEOUT_MS,
  DEFAULT_ROLLOUT_POLL_MS,
  DEFAULT_ROLLOUT_TIMEOUT_MS,
  type ApiClientOptions,
  type WaitOptions,
} from './client.js';
export {
  ADMIN_TOKEN_FILE,
  CA_ENV,
  readConnection,
  readServerFile,
  removeServerFile,
  SERVER_ENV,
  SERVER_FILE,
  TOKEN_ENV,
  writeAdminToken,
  writeServerFile,
  type Connection,
  type ConnectionFlags,
  type ServerFileJson,
} from './connect.js';
export { FleetPlane, type FleetPlaneOptions } from './plane.js';
export {
  chaosReportJson,
  chaosRunJson,
  chaosTerminationJson,
  instanceJson,
  releaseJson,
  ringJson,
  rolloutDetailJson,
  rolloutJson,
} from './json.js';
export {
  controlPlanePaths,
  startControlPlane,
  type ControlPlaneOptions,
  type RunningControlPlane,
} from './control-plane.js';
export { pushedImage, targetDriver, type NamedTarget } from './target-driver.js';
export { FAKE_DIGEST, FAKE_TIME, FakeControlPlane, type PlaneCall } from './fake.js';
