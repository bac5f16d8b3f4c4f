// Reads a template of templates-gallery/ as a bundle, for tests.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Bundle } from '../lib/metadata';

export function loadTemplate(id: string): Bundle {
  const root = join(__dirname, '../../../templates-gallery', id);
  const bundle: Bundle = { 'trellis.json': JSON.parse(readFileSync(join(root, 'trellis.json'), 'utf8')) };
  for (const folder of ['entities', 'flows', 'views', 'reports', 'rules']) {
    let names: string[] = [];
    try { names = readdirSync(join(root, folder)); } catch { continue; }
    for (const name of names.filter((n) => n.endsWith('.json'))) bundle[`${folder}/${name}`] = JSON.parse(readFileSync(join(root, folder, name), 'utf8'));
  }
  return bundle;
}
