// Package docs holds no code: its tests keep the Markdown pages true. They
// run the README's tour against the demo, check that every relative link
// and anchor resolves, and that every command shown in a shell block names
// flags its binary accepts and make targets that exist.
package docs
