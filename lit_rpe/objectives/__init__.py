"""Training objectives and their samplers: ``flow`` (flow matching, time 1 = noise to 0 = data)
and ``ddpm`` (the official DiT files' DDPM chain). Nothing is imported here."""
