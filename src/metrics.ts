/**
 * Prometheus metrics (prom-client) on a registry of our own, so several daemons can live in one
 * process (tests). Label values are channel/model/token *names* — never a key or token.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { ReloadOutcome } from './config/reloader.js';
import type { Snapshot } from './config/snapshot.js';

/** Every metric ccload exports. */
export class Metrics {
  readonly registry = new Registry();
  readonly configGeneration = new Gauge({
    name: 'ccload_config_generation',
    help: 'Generation of the configuration snapshot serving now.',
    registers: [this.registry],
  });
  readonly configLastReloadSuccessful = new Gauge({
    name: 'ccload_config_last_reload_successful',
    help: 'Whether the last configuration reload attempt succeeded (1) or was rejected (0).',
    registers: [this.registry],
  });
  readonly configLastReloadSuccess = new Gauge({
    name: 'ccload_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful configuration load or reload.',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'ccload_config_reloads_total',
    help: 'Configuration reload runs by cause and result.',
    labelNames: ['source', 'result'] as const,
    registers: [this.registry],
  });
  readonly configWarnings = new Gauge({
    name: 'ccload_config_warnings',
    help: 'Warnings of the configuration serving now (literal secrets, channels without keys, ...).',
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ccload_' });
  }

  /** Records the snapshot loaded at start-up. */
  startup(snapshot: Snapshot): void {
    this.configGeneration.set(snapshot.generation);
    this.configLastReloadSuccessful.set(1);
    this.configLastReloadSuccess.set(snapshot.loadedAt / 1000);
    this.configWarnings.set(snapshot.warnings.length);
  }

  /** Records one reload run. */
  reload(outcome: ReloadOutcome, current: Snapshot): void {
    this.configReloads.inc({ source: outcome.source, result: outcome.result });
    this.configLastReloadSuccessful.set(outcome.result === 'rejected' ? 0 : 1);
    if (outcome.result !== 'rejected') this.configLastReloadSuccess.set(outcome.at / 1000);
    this.configGeneration.set(current.generation);
    this.configWarnings.set(current.warnings.length);
  }
}
