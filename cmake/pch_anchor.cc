// Compiles the shared precompiled header (cmake/Pch.cmake); no code of its own.
