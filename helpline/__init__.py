"""helpline: anonymous help for people worried about their own abusive behaviour."""
