/**
 * The hybrid connection of a site's key generation: `site-<siteId>` at onboarding, then
 * `site-<siteId>.k<n>` after the n-th key rotation. Rotation moves a site to a new hybrid
 * connection and deletes the old one, because deleting it is what closes listeners that still
 * hold an old key (ADR 0009); site ids have no `.`, so the name parses back unambiguously.
 * Here (no dependencies) because the rollout makes the names and the module reads its site back.
 */
export const hybridConnectionOf = (siteId: string, generation = 0) =>
  generation === 0 ? `site-${siteId}` : `site-${siteId}.k${generation}`;

/** Site id and key generation of a hybrid connection name made by `hybridConnectionOf`. */
export function parseHybridConnection(name: string): { siteId: string; generation: number } | undefined {
  const m = /^site-([a-z0-9][a-z0-9-]*)(?:\.k([1-9][0-9]*))?$/.exec(name);
  return m?.[1] ? { siteId: m[1], generation: m[2] ? Number(m[2]) : 0 } : undefined;
}
