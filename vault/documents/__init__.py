"""Documents: sanitised on intake, envelope-encrypted under their case key, streamed back."""
