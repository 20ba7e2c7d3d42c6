pub mod tail;
