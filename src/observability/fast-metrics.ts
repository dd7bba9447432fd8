/**
 * Counters and histograms for the data path that cost a property increment per use. prom-client
 * hashes the label values on every `inc`/`observe`, even through a `labels()` child, and that was
 * a visible share of a proxied request's CPU (bench `--cpu-prof`). These keep one plain child per
 * label set — looked up once per channel × model by the caller — and are registered in the same
 * prom-client registry, which renders them in the usual text format at scrape time.
 */
import type { Registry } from 'prom-client';

/** One labelled counter. */
export interface CounterChild {
  inc(n?: number): void;
}

/** One labelled histogram. */
export interface HistogramChild {
  observe(v: number): void;
}

type Labels = Record<string, string>;

abstract class Fast<C> {
  readonly #children = new Map<string, { labels: Labels; child: C }>();
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  /** The child for these label values (in `labelNames` order), created on first use. */
  labels(...values: string[]): C {
    const key = values.length === 1 ? values[0]! : values.join('\u0000');
    let e = this.#children.get(key);
    if (!e) {
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => {
        labels[n] = values[i] ?? '';
      });
      e = { labels, child: this.create() };
      this.#children.set(key, e);
    }
    return e.child;
  }

  protected abstract create(): C;
  protected abstract values(
    labels: Labels,
    child: C,
  ): { value: number; labels: Labels; metricName?: string }[];

  /** prom-client's metric interface: the values to render. */
  async get() {
    const values = [];
    for (const { labels, child } of this.#children.values()) values.push(...this.values(labels, child));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.#children.clear();
  }
}

class CounterCell implements CounterChild {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

/** A counter with labels. */
export class FastCounter extends Fast<CounterCell> {
  constructor(opts: { name: string; help: string; labelNames: readonly string[]; registry: Registry }) {
    super(opts.name, opts.help, 'counter', opts.labelNames, opts.registry);
  }
  protected create(): CounterCell {
    return new CounterCell();
  }
  protected values(labels: Labels, c: CounterCell) {
    return [{ value: c.value, labels }];
  }
}

class HistogramCell implements HistogramChild {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** A histogram with labels and fixed upper bounds (cumulative when rendered, `+Inf` = count). */
export class FastHistogram extends Fast<HistogramCell> {
  readonly #buckets: readonly number[];
  constructor(opts: {
    name: string;
    help: string;
    labelNames: readonly string[];
    buckets: readonly number[];
    registry: Registry;
  }) {
    super(opts.name, opts.help, 'histogram', opts.labelNames, opts.registry);
    this.#buckets = [...opts.buckets].sort((a, b) => a - b);
  }
  protected create(): HistogramCell {
    return new HistogramCell(this.#buckets);
  }
  protected values(labels: Labels, h: HistogramCell) {
    const out: { value: number; labels: Labels; metricName?: string }[] = [];
    let cumulative = 0;
    h.buckets.forEach((le, i) => {
      cumulative += h.counts[i]!;
      out.push({
        value: cumulative,
        labels: { ...labels, le: String(le) },
        metricName: `${this.name}_bucket`,
      });
    });
    out.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${this.name}_bucket` });
    out.push({ value: h.sum, labels, metricName: `${this.name}_sum` });
    out.push({ value: h.count, labels, metricName: `${this.name}_count` });
    return out;
  }
}
