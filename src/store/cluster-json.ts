import type { ClusterConfig } from './store.ts';

/** cluster.json at the top of the cluster directory, as 0.11 wrote it. */
export function encodeClusterJson(config: ClusterConfig): string {
  return JSON.stringify({ GitStore: true, Config: config }, null, 2);
}

/** Reads the default etcd token; anything else in the file is ignored, as 0.11 did. */
export function parseClusterJson(text: string): ClusterConfig {
  const raw = JSON.parse(text) as { Config?: { DefaultEtcdClusterToken?: unknown } };
  const token = raw.Config?.DefaultEtcdClusterToken;
  return { DefaultEtcdClusterToken: typeof token === 'string' ? token : '' };
}
