//! Sources: the readers at the door.
