//! The SeaCLR buoy simulator.
