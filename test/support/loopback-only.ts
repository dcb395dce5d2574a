/**
 * Test set-up: the suite may talk only to loopback. Any fetch to another host fails the test at
 * once, naming the URL, so a config that forgot its fixture mirror can never reach a real archive.
 */
const realFetch = globalThis.fetch;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

globalThis.fetch = (async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  if (!LOOPBACK.test(url.hostname)) {
    throw new Error(`tests may only send traffic to loopback, but something fetched ${url.href}`);
  }
  return realFetch(input, init);
}) as typeof fetch;
