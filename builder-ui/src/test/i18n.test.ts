// Every string a person sees is translated: both languages have the same keys, and every key the
// code asks for exists (static keys, and the families of keys built from a prefix).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import en from '../i18n/en.json';
import zh from '../i18n/zh-CN.json';
import { detectLanguage } from '../i18n';
import { FIELD_KINDS } from '../lib/metadata';
import { opsFor } from '../lib/filters';

type Tree = { [k: string]: string | Tree };

function keys(tree: Tree, prefix = ''): string[] {
  return Object.entries(tree).flatMap(([k, v]) => (typeof v === 'string' ? [prefix + k] : keys(v, `${prefix}${k}.`)));
}

function lookup(tree: Tree, key: string): string | Tree | undefined {
  return key.split('.').reduce<string | Tree | undefined>((node, part) => (node && typeof node === 'object' ? node[part] : undefined), tree);
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'test' ? [] : sources(path);
    return /\.(ts|tsx)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const code = sources(join(__dirname, '..')).map((p) => readFileSync(p, 'utf8')).join('\n');

describe('translations', () => {
  it('have the same keys in zh-CN and en, none empty', () => {
    expect(keys(zh as Tree).sort()).toEqual(keys(en as Tree).sort());
    for (const k of keys(en as Tree)) {
      expect(String(lookup(en as Tree, k)).trim(), k).not.toBe('');
      expect(String(lookup(zh as Tree, k)).trim(), k).not.toBe('');
    }
  });

  it('cover every static key the code uses', () => {
    const used = [...code.matchAll(/\bt\(['`]([a-zA-Z0-9_.]+)['`]/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(100);
    const missing = used.filter((k) => typeof lookup(en as Tree, k) !== 'string' || typeof lookup(zh as Tree, k) !== 'string');
    expect(missing).toEqual([]);
  });

  it('cover every family of keys the code builds', () => {
    const prefixes = [...new Set([...code.matchAll(/\bt\(`([a-zA-Z0-9_.]+)\.\$\{/g)].map((m) => m[1]))];
    expect(prefixes.length).toBeGreaterThan(5);
    for (const p of prefixes) {
      expect(typeof lookup(en as Tree, p), p).toBe('object');
      expect(typeof lookup(zh as Tree, p), p).toBe('object');
    }
    for (const kind of FIELD_KINDS) {
      expect(lookup(en as Tree, `kinds.${kind}`), kind).toBeTypeOf('string');
      for (const op of opsFor(kind)) expect(lookup(zh as Tree, `filter.ops.${op}`), op).toBeTypeOf('string');
    }
  });

  it('follow the browser language unless the user chose one', () => {
    expect(detectLanguage(null, ['zh-TW', 'en'])).toBe('zh-CN');
    expect(detectLanguage(null, ['en-GB'])).toBe('en');
    expect(detectLanguage(null, ['fr-FR'])).toBe('en');
    expect(detectLanguage('en', ['zh-CN'])).toBe('en');
  });
});
