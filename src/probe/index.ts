/** The registry protocol client: health probes (SPEC 6) and the storage crawl (SPEC 7). */
export * from './types';
export { createProber, type ClosableProber } from './probe';
export { createStorageCrawler, type ClosableStorageCrawler, type CrawlerOptions } from './storage';
export { createHttpClient, type HttpClient } from './client';
export { createEgressPolicy, type EgressPolicy } from './egress';
export { parseChallenges, type Challenge } from './challenge';
