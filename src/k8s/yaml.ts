import { stringify } from 'yaml';
import type { K8sObject } from './types.js';

/**
 * Objects as one multi-document YAML stream, `---` before each, in the order given. Written as
 * YAML 1.1, which is what kubectl reads, so strings such as `"yes"`, `"on"` or `"0755"` stay
 * quoted strings instead of turning into booleans or octal numbers there.
 *
 * @example
 * toYaml([deployment, service]); // '---\napiVersion: apps/v1\nkind: Deployment\n…'
 */
export function toYaml(objects: readonly K8sObject[]): string {
  return objects.map((o) => `---\n${stringify(o, { version: '1.1', lineWidth: 0 })}`).join('');
}
