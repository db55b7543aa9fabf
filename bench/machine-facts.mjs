// Facts about the machine and the measured script, shared by bench/run.mjs and bench/soak.mjs.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';

/** Collects the date, CPU, Dovecot and Node versions, git revision and the script's hash. */
export function machineFacts(repo, bridgeScript) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  let dovecotVersion;
  try {
    dovecotVersion = execFileSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' }).trim();
  } catch (err) {
    dovecotVersion = `unknown (${err.message})`;
  }
  let gitRevision = 'unknown';
  try {
    const head = execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', repo, 'status', '--porcelain', '--', 'lua-out'], { encoding: 'utf8' }).trim() !== '';
    gitRevision = dirty ? `${head}, lua-out/ modified` : head;
  } catch {
    // Not a git checkout: the script hash below still identifies what was measured.
  }
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    dovecotVersion,
    nodeVersion: process.version,
    gitRevision,
    scriptSha256: createHash('sha256').update(fs.readFileSync(bridgeScript)).digest('hex').slice(0, 16),
    loadAverageAtStart: readLoadAverage(),
  };
}

/** Returns the 1, 5 and 15 minute load averages. Other work on the machine lowers the measured rates. */
export function readLoadAverage() {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Returns the kernel's clock ticks per second, for CPU times read from /proc. */
export function readClockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
