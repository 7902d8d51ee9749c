"""Root conftest: the rehearsal plugin (rehearsal.pytest_plugin) is registered by the
package's entry point; this file only marks the repository root for pytest."""
