"""Activities and volunteer events: sign-up, waitlist, check-in, volunteer hours, exports."""
from activities.service import (ActivityCancelled, ActivityError, ActivityFull, ActivityNotFound,
                                AlreadySignedUp, CannotCancel, CheckInError, DeadlinePassed,
                                InvalidActivity, NotOpen, SignupNotFound)

__all__ = ["ActivityError", "ActivityCancelled", "ActivityFull", "ActivityNotFound",
           "AlreadySignedUp", "CannotCancel", "CheckInError", "DeadlinePassed",
           "InvalidActivity", "NotOpen", "SignupNotFound"]
