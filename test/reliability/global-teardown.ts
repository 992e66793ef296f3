import { rmSync } from 'node:fs';
import sharedTeardown from '../setup/global-teardown';

export default async function globalTeardown(): Promise<void> {
  if (process.env.RELIABILITY_BUILD) rmSync(process.env.RELIABILITY_BUILD, { recursive: true, force: true });
  await sharedTeardown();
}
