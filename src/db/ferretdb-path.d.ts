export function ferretdbBinaryPath(env?: Record<string, string | undefined>): string;
export const ferretdbSourceDir: string;
