"""The pages: server-rendered HTML for patients, coordinators, analysts and the privacy officer,
in English and German, with cookie sessions and CSRF-checked forms (see ``session``)."""
