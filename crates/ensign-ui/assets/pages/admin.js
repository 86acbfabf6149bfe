// Being built.

import { pageHeader } from "../components/dom.js";

export async function render(root) {
  root.append(pageHeader("admin"));
}
