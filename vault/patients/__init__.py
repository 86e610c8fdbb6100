"""Patients: identity data sealed field by field under the patient's own key."""
