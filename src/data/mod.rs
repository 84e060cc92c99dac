//! Recordings in the Sensorium / Lurz 2020 FileTree layout (REFERENCE.md §6), read from a folder
//! or straight from its `.zip` archive.
