/**
 * Test set-up: the suite may talk only to loopback, and to the addresses of network namespaces a
 * test made itself (registered with {@link allowTestNetwork}). Any fetch to another host fails the
 * test at once, naming the URL, so a config that forgot its fixture mirror can never reach a real
 * archive.
 */
const realFetch = globalThis.fetch;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/** Address prefixes (`10.213.7.`) of test-made namespaces, shared through globalThis by every import. */
const testNetworks: Set<string> = ((globalThis as { __kilnTestNetworks?: Set<string> }).__kilnTestNetworks ??=
  new Set<string>());

/** Lets tests fetch from `prefix` (such as `10.213.7.`): the addresses of namespaces they made. */
export function allowTestNetwork(prefix: string): () => void {
  testNetworks.add(prefix);
  return () => testNetworks.delete(prefix);
}

globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  if (!LOOPBACK.test(url.hostname) && ![...testNetworks].some((p) => url.hostname.startsWith(p))) {
    throw new Error(`tests may only send traffic to loopback, but something fetched ${url.href}`);
  }
  return realFetch(input, init);
}) as typeof fetch;
