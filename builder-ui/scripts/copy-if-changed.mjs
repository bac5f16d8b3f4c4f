// Copy a generated file into the sources only when its content changed, so the file's time stays put
// and cargo's `rerun-if-changed` on `src/` does not rebuild the server after every UI build.
import { readFileSync, writeFileSync, existsSync } from "node:fs";

const [from, to] = process.argv.slice(2);
const fresh = readFileSync(from);
if (!existsSync(to) || !readFileSync(to).equals(fresh)) {
  writeFileSync(to, fresh);
}
