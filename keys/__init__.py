"""The key hierarchy: root-key providers, case/patient/scope keys, wrapping, rotation, destruction.

Imports nothing of ours (an import-linter contract keeps it so). Key material leaves this
package only through functions whose names start with ``unsafe_``.
"""
